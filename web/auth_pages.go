package web

import _ "embed"

// AuthPages are the pages vastauth answers browsers with, as html/template
// definitions: "login" (the 401 behind the browser's login prompt: how to
// log in, never the token), "limited" (429), "logout" (the button that
// POSTs the logout) and "logged-out". They share the dashboard's palette,
// light and dark, and need no script.
//
//go:embed auth_pages.html
var AuthPages string
