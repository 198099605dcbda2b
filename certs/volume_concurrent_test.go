package certs_test

import (
	"sync"
	"testing"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// TestVolumeReadBundleNeverMixesGenerations writes and reads through two
// Volume instances, so the per-service lock does not serialize them (as with
// a reader in another process). Every read must come from one generation:
// files may be missing if cleanup removed the generation mid-read, but no
// file may come from another write than the others.
func TestVolumeReadBundleNeverMixesGenerations(t *testing.T) {
	t.Parallel()
	writer, dir := newTestVolume(t)
	reader, err := certs.OpenVolume(dir)
	if err != nil {
		t.Fatalf("OpenVolume: %v", err)
	}
	defer reader.Close()
	bundles := []map[string]string{bundleContent(fakeBundle("a")), bundleContent(fakeBundle("b"))}
	if _, err := writer.WriteBundle("web", fakeBundle("a"), keepOwner); err != nil {
		t.Fatal(err)
	}

	const writes = 40
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		defer close(stop)
		for i := range writes {
			if _, err := writer.WriteBundle("web", fakeBundle(string(rune('a'+(i+1)%2))), keepOwner); err != nil {
				t.Errorf("WriteBundle: %v", err)
				return
			}
		}
	})
	reads := 0
	for done := false; !done; reads++ {
		select {
		case <-stop:
			done = true
		default:
		}
		b, err := reader.ReadBundle("web")
		if err != nil {
			continue // ..data pointed at a generation removed before it was opened
		}
		got := bundleContent(b)
		var from []int
		for k, want := range bundles {
			for _, name := range volumeFileNames {
				if got[name] != "" && got[name] == want[name] {
					from = append(from, k)
					break
				}
			}
		}
		if len(from) > 1 {
			t.Fatalf("read %d of generation %s mixes writes: %q", reads, b.Generation, got)
		}
	}
	wg.Wait()
	t.Logf("%d reads during %d writes", reads, writes)
}
