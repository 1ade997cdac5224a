#!/bin/bash
# 80-capabilities-manifest.sh: make the instance discoverable by AI agents.
#   1. /etc/vast_capabilities.json, the manifest as the boot sees it (the
#      portal's /capabilities serves it live);
#   2. /etc/vast-agents-guide.md, every /etc/vast_agents/*.md in one file,
#      linked as AGENTS.md and CLAUDE.md in $WORKSPACE and the home
#      directories (a user's own file of that name is left alone);
#   3. one line in the SSH banner pointing to the guide, unless
#      ENABLE_AGENT_BANNER=false (boot flag --no-agent-banner).
# The work is `caddy portal capabilities --boot` (docs/agents.md).
caddy portal capabilities --boot
