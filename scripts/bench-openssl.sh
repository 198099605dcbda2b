#!/usr/bin/env bash
# bench-openssl.sh: the work of BenchmarkIssueBundle (certs/bench_issue_test.go)
# done with the openssl CLI, as a baseline for `make bench`.
#
# One "bundle" is a server and a client certificate, each made with
#   openssl genpkey          (leaf key)
#   openssl req -new         (CSR)
#   openssl x509 -req        (signed by an ECDSA P-256 CA, with SAN/EKU/key usage extensions)
# The CA is created once per algorithm, outside the timed loop, as in the Go
# benchmark. Leaf algorithms: ecdsa-p256, rsa-2048, ed25519.
#
# Usage: scripts/bench-openssl.sh [N]        (N bundles per algorithm, default 20;
#                                             or set BENCH_N)
# Output on stdout, one machine-parseable line per algorithm:
#   openssl ecdsa-p256 bundles_per_sec=123.4
# Everything else goes to stderr.
set -euo pipefail

n="${1:-${BENCH_N:-20}}"
if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
	echo "bench-openssl: N must be a positive integer, got '$n'" >&2
	exit 2
fi
if ! command -v openssl >/dev/null 2>&1; then
	echo "bench-openssl: openssl not found in PATH" >&2
	exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

# The CA: ECDSA P-256, like the controller's default.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -subj "/CN=bench CA" -days 1 \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt 2>/dev/null

# writeext KEYUSAGE: the extensions IssueBundle sets. RSA leaves also get
# keyEncipherment, like the Go code.
writeext() {
	cat >server.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,$1
extendedKeyUsage=serverAuth
subjectAltName=DNS:web,DNS:web.crank_default,DNS:localhost
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF
	cat >client.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,$1
extendedKeyUsage=clientAuth
subjectAltName=URI:spiffe://crank.local/service/web
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF
}

# genkey ALG OUT: one leaf key of the given algorithm.
genkey() {
	case "$1" in
	ecdsa-p256) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$2" ;;
	rsa-2048) openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$2" ;;
	ed25519) openssl genpkey -algorithm ED25519 -out "$2" ;;
	esac
}

# leaf ALG NAME EXTFILE: key, CSR and CA-signed certificate for one leaf.
# x509 -req picks a random serial when given no serial file (OpenSSL 3).
leaf() {
	genkey "$1" "$2.key"
	openssl req -new -key "$2.key" -subj "/CN=web" -out "$2.csr"
	openssl x509 -req -in "$2.csr" -CA ca.crt -CAkey ca.key -days 90 \
		-extfile "$3" -out "$2.crt" 2>/dev/null
}

now() { date +%s.%N; }

for alg in ecdsa-p256 rsa-2048 ed25519; do
	case "$alg" in
	rsa-*) writeext digitalSignature,keyEncipherment ;;
	*) writeext digitalSignature ;;
	esac
	# Warm up once (and fail loudly if this openssl cannot do the algorithm).
	leaf "$alg" server server.ext
	start="$(now)"
	for ((i = 0; i < n; i++)); do
		leaf "$alg" server server.ext
		leaf "$alg" client client.ext
	done
	end="$(now)"
	# Outside the timing: the baseline must produce certificates that verify,
	# or it measures the wrong work.
	openssl verify -CAfile ca.crt -purpose sslserver server.crt >/dev/null
	openssl verify -CAfile ca.crt -purpose sslclient client.crt >/dev/null
	awk -v alg="$alg" -v n="$n" -v s="$start" -v e="$end" \
		'BEGIN { printf "openssl %s bundles_per_sec=%.1f\n", alg, n / (e - s) }'
	echo "bench-openssl: $alg: $n bundles in $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }')s" >&2
done
