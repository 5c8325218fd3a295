package format

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/fstest"

	"github.com/treeshift/treeshift/internal/treetest"
)

func BenchmarkCodecs(b *testing.B) {
	tr := treetest.Random(rand.New(rand.NewPCG(1, 2)), 100)
	for _, c := range All() {
		b.Run(fmt.Sprintf("v%d/encode", c.Version()), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := c.Encode(tr); err != nil {
					b.Fatal(err)
				}
			}
		})
		fsys := fstest.MapFS{}
		files, _ := c.Encode(tr)
		for _, f := range files {
			fsys[f.Name] = &fstest.MapFile{Data: f.Data}
		}
		b.Run(fmt.Sprintf("v%d/decode", c.Version()), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, _, err := Read(fsys); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
