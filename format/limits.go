package format

import (
	"errors"
	"io/fs"
	"path"
	"strings"
)

// Size limits of a tree's files. A decoder holds a file whole, and then its
// decoded form, so a file planted or grown by someone else must not decide
// how much memory a command takes: each file's size is checked, from its
// directory's listing, before it is read.
//
// A resolve record as treeshift writes it takes a few hundred bytes, up to a
// few KiB with long scripts and environments. Allowing 4 KiB per
// service on average, a tree of 10,000 services is about 40 MiB in any
// format, index included, which MaxTreeFile holds with room to spare.
const (
	// MaxRecord bounds a v1 resolve file: one service's record, a thousand
	// times the size of a large one.
	MaxRecord = 1 << 20
	// MaxTreeFile bounds each file that holds a whole tree or its index
	// (v1's meta and compiled/index, both files of v2 and of v3), and the
	// sum of a v1 tree's resolve files, so that v1 loads no more than the
	// other formats do.
	MaxTreeFile = 64 << 20
)

// limitOf returns the limit of the file name and what the message calls it.
func limitOf(name string) (int64, string) {
	if strings.HasPrefix(name, v1RecordDir+"/") {
		return MaxRecord, "a record"
	}
	return MaxTreeFile, "a tree file"
}

func checkSize(name string, size int64) error {
	if limit, what := limitOf(name); size > limit {
		return bad(name, "%d bytes, over the %d-byte limit of %s", size, limit, what)
	}
	return nil
}

// checkResolveTotal holds a v1 tree's records together to the limit of a
// tree file.
func checkResolveTotal(total int64, records int) error {
	if total > MaxTreeFile {
		return bad(v1RecordDir, "%d bytes in %d records, over the %d-byte limit of a tree file", total, records, MaxTreeFile)
	}
	return nil
}

// checkEntry checks, from a directory listing, that name is a regular file
// within its limit, and returns its size.
func checkEntry(name string, de fs.DirEntry) (int64, error) {
	if !de.Type().IsRegular() {
		return 0, bad(name, "is not a regular file")
	}
	fi, err := de.Info()
	if err != nil {
		return 0, bad(name, "%v", unwrapFS(err))
	}
	return fi.Size(), checkSize(name, fi.Size())
}

// readFile reads name from fsys once its directory's listing shows a regular
// file within its limit. The listing is used rather than fs.Stat, which opens
// the file when fsys has no Stat of its own (a tree generation's has not):
// opening follows a symbolic link and blocks on a FIFO, where a listing
// entry's Info is an lstat. A name the listing lacks is left to the read to
// report, in the system's words for a missing file.
func readFile(fsys fs.FS, name string) ([]byte, error) {
	entries, err := fs.ReadDir(fsys, path.Dir(name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, bad(name, "%v", unwrapFS(err))
	}
	for _, de := range entries {
		if de.Name() == path.Base(name) {
			if _, err := checkEntry(name, de); err != nil {
				return nil, err
			}
			break
		}
	}
	return readChecked(fsys, name)
}

// readChecked reads name, whose size its caller has checked, turning a
// missing or unreadable file into a FileError naming it.
func readChecked(fsys fs.FS, name string) ([]byte, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, bad(name, "%v", unwrapFS(err))
	}
	// A file that grew after it was listed has been read, but is refused
	// all the same: no decoder accepts more than the limit.
	if err := checkSize(name, int64(len(b))); err != nil {
		return nil, err
	}
	return b, nil
}

// checkEncoded refuses files that their decoder would refuse for their size:
// a tree that outgrew a format is refused when written, not once it is on
// disk and can no longer be loaded to be mended.
func checkEncoded(files []File) error {
	var total int64
	records := 0
	for _, f := range files {
		if err := checkSize(f.Name, int64(len(f.Data))); err != nil {
			return err
		}
		if strings.HasPrefix(f.Name, v1RecordDir+"/") {
			total += int64(len(f.Data))
			records++
		}
	}
	return checkResolveTotal(total, records)
}
