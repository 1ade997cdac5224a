package vastauth

import "testing"

// BenchmarkStripQuery is what the handler adds to a request that carries a
// query string: every value is scanned for the instance's secrets (plain,
// escaped, base64), whatever its parameter's name. Requests without a query
// skip it. The cases are a short app query, a long one (a search form, a
// pagination cursor), and one whose value carries the secret.
func BenchmarkStripQuery(b *testing.B) {
	set := NewSecretSet([]string{"3f6c2a9e0d41b8c7e5a2f19d04b6c3a8e7f1d2c9b0a4e6f8d3c5b7a9e1f2d4c6"})
	for _, bc := range []struct{ name, query string }{
		{"short", "page=2&sort=desc"},
		{"long", "q=stable+diffusion+xl+lora&cursor=eyJpZCI6MTIzNDU2Nzg5MCwidHMiOjE3MDAwMDAwMDB9&filter=nsfw%3Afalse&limit=50&lang=en-US"},
		{"secret", "page=2&x=3f6c2a9e0d41b8c7e5a2f19d04b6c3a8e7f1d2c9b0a4e6f8d3c5b7a9e1f2d4c6"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				set.StripQuery(bc.query)
			}
		})
	}
}
