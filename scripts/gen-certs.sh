#!/usr/bin/env bash
# Makes the certificates for TLS and mutual TLS between peers, with openssl:
#
#   scripts/gen-certs.sh DIR [NODE...]      (NODE default: node1 node2 node3)
#
#   DIR/ca.pem, ca-key.pem             the cluster CA (also the client CA)
#   DIR/NODE.pem, NODE-key.pem         a node certificate per NODE, for both
#                                      ports (serverAuth and clientAuth; SAN
#                                      DNS:NODE, DNS:localhost, IP:127.0.0.1,
#                                      IP:::1), signed by ca.pem
#   DIR/client.pem, client-key.pem     a client certificate (CN kvctl), for
#                                      --client-cert-auth and kvctl --cert
#   DIR/other-ca.pem, other-ca-key.pem a second, unrelated CA, and
#   DIR/other-node.pem, other-node-key.pem, other-client.pem, other-client-key.pem
#                                      certificates it signed (same names and
#                                      uses), for negative tests: kvd refuses them
#
# EC P-256 keys, valid 825 days. An existing DIR/ca.pem + ca-key.pem (and
# other-ca*) is reused, so running it again reissues the leaf certificates
# from the same CA (rotation). Keys are mode 600. Installs openssl with
# apt-get when it is missing.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 DIR [NODE...]" >&2
  exit 2
fi
DIR=$1
shift
NODES=("$@")
if [ ${#NODES[@]} -eq 0 ]; then NODES=(node1 node2 node3); fi

if ! command -v openssl >/dev/null 2>&1; then
  echo "gen-certs: installing openssl" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends openssl
fi

mkdir -p "$DIR"
umask 077
DAYS=825
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

newkey() {  # newkey FILE
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

ca() {  # ca NAME CN: DIR/NAME.pem and DIR/NAME-key.pem, unless both exist.
  local name=$1 cn=$2
  if [ -s "$DIR/$name.pem" ] && [ -s "$DIR/$name-key.pem" ]; then return; fi
  newkey "$DIR/$name-key.pem"
  openssl req -x509 -new -key "$DIR/$name-key.pem" -sha256 -days "$DAYS" \
    -subj "/O=kvstore/CN=$cn" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$DIR/$name.pem"
}

leaf() {  # leaf CA NAME CN USAGE [SAN]: DIR/NAME.pem signed by DIR/CA.pem.
  local ca=$1 name=$2 cn=$3 usage=$4 san=${5:-}
  newkey "$DIR/$name-key.pem"
  openssl req -new -key "$DIR/$name-key.pem" -subj "/O=kvstore/CN=$cn" \
    -out "$TMP/$name.csr"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    if [ -n "$san" ]; then echo "subjectAltName=$san"; fi
  } >"$TMP/$name.ext"
  openssl x509 -req -in "$TMP/$name.csr" -CA "$DIR/$ca.pem" -CAkey "$DIR/$ca-key.pem" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$DAYS" -sha256 \
    -extfile "$TMP/$name.ext" -out "$DIR/$name.pem" 2>/dev/null
}

ca ca "kvstore CA"
ca other-ca "some other CA"
for n in "${NODES[@]}"; do
  leaf ca "$n" "$n" serverAuth,clientAuth "DNS:$n,DNS:localhost,IP:127.0.0.1,IP:::1"
done
leaf ca client kvctl clientAuth
leaf other-ca other-node other-node serverAuth,clientAuth \
  "DNS:${NODES[0]},DNS:localhost,IP:127.0.0.1,IP:::1"
leaf other-ca other-client kvctl clientAuth
chmod 644 "$DIR"/*.pem
chmod 600 "$DIR"/*-key.pem
for n in "${NODES[@]}" client; do
  openssl verify -CAfile "$DIR/ca.pem" "$DIR/$n.pem" >/dev/null
done
echo "gen-certs: CA, ${NODES[*]}, client and the other CA's certificates in $DIR" >&2
