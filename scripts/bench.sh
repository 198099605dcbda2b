#!/usr/bin/env bash
# make bench: Go benchmarks for issuance and durable writes, and the openssl
# CLI doing the same issuance work, measured side by side in one run so the
# ratio is meaningful on a noisy machine.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCHTIME=${BENCHTIME:-2s}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "== go benchmarks (benchtime $BENCHTIME)"
go test ./certs -run '^$' -bench 'IssueBundle|WriteBundle' -benchtime "$BENCHTIME" -count 1 | tee "$out"
go test ./reconcile -run '^$' -bench . -benchtime "$BENCHTIME" -count 1

echo
echo "== openssl CLI, same work: a CA-signed server + client pair per bundle"
osl=$(scripts/bench-openssl.sh)
echo "$osl"

echo
echo "== ratio (Go bundles/s ÷ openssl bundles/s)"
for alg in ecdsa-p256 rsa-2048; do
  go_rate=$(awk -v a="IssueBundle/$alg" '$1 ~ a { for (i=1;i<=NF;i++) if ($(i) == "bundles/s") print $(i-1) }' "$out" | head -1)
  osl_rate=$(awk -v a="$alg" '$2 == a { split($3, kv, "="); print kv[2] }' <<<"$osl" | head -1)
  if [[ -n "$go_rate" && -n "$osl_rate" ]]; then
    awk -v g="$go_rate" -v o="$osl_rate" -v a="$alg" 'BEGIN { printf "%-11s go %10.1f/s  openssl %8.1f/s  ratio %6.1fx\n", a, g, o, g/o }'
  else
    echo "$alg: missing figure (go='$go_rate' openssl='$osl_rate')" >&2
    exit 1
  fi
done
