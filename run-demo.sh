#!/usr/bin/env bash
# Sets up a fresh Debian machine (with the .NET SDK) and runs `promha-lab demo`: three PromHa nodes,
# each supervising its own real Prometheus and Alertmanager, on 127.0.0.1. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")"
deploy/install-deps.sh
dotnet build tools/PromHa.LabTool -c Release -o .artifacts/promha -v quiet -nologo
exec .artifacts/promha/promha-lab demo "$@"
