#!/usr/bin/env bash
# Lints an OpenAPI document with Redocly CLI (recommended rules,
# redocly.yaml) and Spectral (spectral:oas, .spectral.yaml), both from
# node_modules here. Any error or warning fails: a rule that is not to
# apply is turned off in the config, with its reason.
set -euo pipefail
doc=$(realpath "${1:?usage: lint.sh OPENAPI_DOCUMENT}")
cd "$(dirname "$0")"
# No telemetry, no update check: CI reaches no host but the registry.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1
bin=./node_modules/.bin

# Redocly fails only on errors; its JSON totals count the warnings too.
totals=$("$bin/redocly" lint --config redocly.yaml --format=json "$doc" 2>/dev/null |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const t=JSON.parse(s).totals;console.log(t.errors+t.warnings)})') || totals=failed
if [ "$totals" != 0 ]; then
  "$bin/redocly" lint --config redocly.yaml "$doc" || true
  echo "apilint: redocly found problems ($totals)" >&2
  exit 1
fi
echo "apilint: redocly lint (recommended): no errors, no warnings"

"$bin/spectral" lint --ruleset .spectral.yaml --fail-severity=warn "$doc"
echo "apilint: spectral lint (spectral:oas): no errors, no warnings"
