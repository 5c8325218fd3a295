package cluster

import (
	"io/fs"
	"path/filepath"
	"reflect"

	"github.com/treeshift/treeshift/model"
)

func equalTrees(a, b *model.Tree) bool { return reflect.DeepEqual(a, b) }

// walkFiles calls fn with the size of every regular file below dir.
func walkFiles(dir string, fn func(int64)) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				fn(info.Size())
			}
		}
		return nil
	})
}
