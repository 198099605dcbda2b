package swarm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// bundleFiles are the files of a bundle, in the order they are mounted.
var bundleFiles = []string{certs.FileServerCert, certs.FileServerKey, certs.FileClientCert, certs.FileClientKey, certs.FileCA}

// isKeyFile reports whether file holds a private key (mounted 0400).
func isKeyFile(file string) bool { return file == certs.FileServerKey || file == certs.FileClientKey }

// maxObjectName is the engine's limit on a secret or config name.
const maxObjectName = 64

// SecretName names one file of one generation of identity's bundle:
// crank-<identity>-<file>-<generation>, e.g. crank-web-tls.key-3. The
// engine caps names at 64 characters; an identity too long for that is
// cut and suffixed with a digest of the whole, so names stay unique and
// readable.
func SecretName(identity, file string, gen int) string {
	return objectName(identity, file, gen)
}

// ManifestName names the config holding the public half of a generation:
// crank-<identity>-manifest-<generation>.
func ManifestName(identity string, gen int) string {
	return objectName(identity, "manifest", gen)
}

func objectName(identity, what string, gen int) string {
	tail := fmt.Sprintf("-%s-%d", what, gen)
	name := "crank-" + identity + tail
	if len(name) <= maxObjectName {
		return name
	}
	sum := sha256.Sum256([]byte(identity))
	digest := hex.EncodeToString(sum[:4])
	keep := maxObjectName - len("crank-") - len(tail) - len(digest) - 1
	return "crank-" + identity[:keep] + "-" + digest + tail
}

// Target is where file of identity's bundle is mounted in a task: the
// path services read in compose mode too, <root>/<identity>/<file>.
func Target(root, identity, file string) string {
	return path.Join(root, identity, file)
}
