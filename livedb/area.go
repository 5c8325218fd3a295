package livedb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"

	"github.com/treeshift/treeshift/internal/durable"
)

// An owner's part of the live directory is its area, LIVE/tree/UID (the
// compiled links, service states and service directories of its trees, and
// its supervisor record), and its scan directory, LIVE/scandir/UID. Root and
// every user share LIVE, LIVE/tree and LIVE/scandir, so whoever controls one
// of those, or another owner's area, controls where that owner's links and
// files are written.
//
// The rules, checked before anything is read or written there:
//   - LIVE, LIVE/tree and LIVE/scandir are directories, not symbolic links,
//     owned by a trusted user (root, or the owner of the --root directory,
//     who owns everything under it anyway), and not writable by others
//     unless they are sticky (then others can add entries, never replace
//     or remove one they do not own);
//   - an owner's area and scan directory are directories, not symbolic
//     links, owned by that owner, and not writable by group or others;
//   - the shared directories are created only by a trusted user; an area is
//     created by its owner only where the owner may write (a sticky shared
//     directory), or by root for the owner (scandir create --owner).

// UnsafeError reports a live directory component treeshift will not use.
type UnsafeError struct {
	Path    string
	Problem string
	// Hint, when set, says how to put it right.
	Hint string
}

func (e *UnsafeError) Error() string {
	msg := e.Path + ": " + e.Problem + ": refused"
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// AreaError reports an owner's area that does not exist and that the owner
// cannot make, with the command root runs to make it.
type AreaError struct {
	Path string
	UID  int
	// Hint is the command that makes it (Dir.AreaHint).
	Hint string
}

func (e *AreaError) Error() string {
	msg := fmt.Sprintf("%s: no live area for uid %d, and it cannot be created by this user", e.Path, e.UID)
	if e.Hint != "" {
		msg += ": root creates it with: " + e.Hint
	}
	return msg
}

// Area is the owner's area, LIVE/tree/UID.
func (d Dir) Area() string { return path.Join(d.Path, TreeName, strconv.Itoa(d.UID)) }

func (d Dir) shared() []string {
	return []string{d.Path, path.Join(d.Path, TreeName), path.Join(d.Path, ScanName)}
}

func (d Dir) trusted(uid int) bool { return uid == 0 || slices.Contains(d.Trusted, uid) }

// inspect returns p's owner and mode without following a link, or exists
// false.
func (d Dir) inspect(p string) (uid int, mode fs.FileMode, exists bool, err error) {
	fi, err := d.FS.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, err
	}
	uid, ok := durable.Owner(fi)
	if !ok {
		return 0, 0, false, fmt.Errorf("%s: no owner information", d.Host(p))
	}
	return uid, fi.Mode(), true, nil
}

// checkShared checks an existing shared directory.
func (d Dir) checkShared(p string) (exists bool, err error) {
	uid, mode, exists, err := d.inspect(p)
	if err != nil || !exists {
		return exists, err
	}
	switch {
	case mode&fs.ModeSymlink != 0:
		return true, &UnsafeError{Path: d.Host(p), Problem: "a symbolic link where the live directory must be a directory"}
	case !mode.IsDir():
		return true, &UnsafeError{Path: d.Host(p), Problem: "not a directory"}
	case !d.trusted(uid):
		return true, &UnsafeError{Path: d.Host(p), Problem: fmt.Sprintf("owned by uid %d, not by root", uid)}
	case mode.Perm()&0o022 != 0 && mode&fs.ModeSticky == 0:
		return true, &UnsafeError{Path: d.Host(p), Problem: fmt.Sprintf("writable by others (mode %04o) and not sticky", mode.Perm())}
	}
	return true, nil
}

// checkOwn checks an existing area or scan directory of the owner.
func (d Dir) checkOwn(p string) (exists bool, err error) {
	uid, mode, exists, err := d.inspect(p)
	if err != nil || !exists {
		return exists, err
	}
	switch {
	case mode&fs.ModeSymlink != 0:
		return true, &UnsafeError{Path: d.Host(p), Problem: "a symbolic link where the owner's live area must be a directory"}
	case !mode.IsDir():
		return true, &UnsafeError{Path: d.Host(p), Problem: "not a directory"}
	case uid != d.UID:
		// Another user made it (a sticky shared directory lets anyone
		// make any name), or it was given away by mistake. Either way
		// treeshift will not guess which: moving it aside is the
		// administrator's call, and loses nothing.
		return true, &UnsafeError{d.Host(p), fmt.Sprintf("owned by uid %d, not by its owner, uid %d", uid, d.UID),
			fmt.Sprintf("if uid %d made it, it holds nothing of uid %d's: move it aside (mv %s %s.uid%d) and run again", uid, d.UID, d.Host(p), d.Host(p), uid)}
	case mode.Perm()&0o022 != 0:
		return true, &UnsafeError{Path: d.Host(p), Problem: fmt.Sprintf("writable by group or others (mode %04o)", mode.Perm())}
	}
	return true, nil
}

// Check verifies the components of the owner's part of the live directory
// that exist; missing ones are fine (nothing of the owner is live).
func (d Dir) Check() error {
	for _, p := range d.shared() {
		if _, err := d.checkShared(p); err != nil {
			return err
		}
	}
	for _, p := range []string{d.Area(), d.ScanDir()} {
		if _, err := d.checkOwn(p); err != nil {
			return err
		}
	}
	return nil
}

// Prepare makes the owner's area ready to be written to, creating what is
// missing where the rules allow.
func (d Dir) Prepare() error { return d.prepare(d.Area(), path.Join(d.Path, TreeName)) }

// PrepareScan makes the owner's scan directory ready, likewise.
func (d Dir) PrepareScan() error { return d.prepare(d.ScanDir(), path.Join(d.Path, ScanName)) }

func (d Dir) prepare(own, parent string) error {
	if exists, err := d.checkOwn(own); err != nil || exists {
		if err == nil {
			return d.Check()
		}
		return err
	}
	me := os.Getuid()
	for _, p := range []string{d.Path, parent} {
		exists, err := d.checkShared(p)
		if err != nil {
			return err
		}
		if exists {
			continue
		}
		if !d.trusted(me) {
			return &AreaError{Path: d.Host(own), UID: d.UID, Hint: d.AreaHint}
		}
		if p == d.Path {
			// The live directory's own parents (a staged root's run/).
			if err := durable.MkdirAll(d.FS, path.Dir(p), 0o755, true); err != nil {
				return err
			}
		}
		if err := d.mkdir(p); err != nil {
			return err
		}
		if _, err := d.checkShared(p); err != nil {
			return err
		}
	}
	if me != d.UID {
		return &AreaError{Path: d.Host(own), UID: d.UID, Hint: d.AreaHint}
	}
	if err := d.mkdir(own); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return &AreaError{Path: d.Host(own), UID: d.UID, Hint: d.AreaHint}
		}
		return err
	}
	_, err := d.checkOwn(own)
	return err
}

// mkdir creates one directory, mode 0755 whatever the umask, and syncs its
// parent. One that appeared meanwhile is left for the caller to check.
func (d Dir) mkdir(p string) error {
	if err := d.FS.Mkdir(p, 0o755); errors.Is(err, fs.ErrExist) {
		return nil
	} else if err != nil {
		return err
	}
	return d.FS.SyncDir(path.Dir(p))
}

// CreateArea makes the area and scan directory of user uid (primary group
// gid), owned by the user, under root-owned shared directories: root's way
// of letting a user's treeshift make trees live without a world-writable
// live directory. An area that exists already must be the user's.
func (d Dir) CreateArea(uid, gid int) error {
	if os.Getuid() != 0 {
		return fmt.Errorf("only root creates live areas for other users")
	}
	u := d
	u.UID = uid
	for _, p := range u.shared() {
		exists, err := u.checkShared(p)
		if err != nil {
			return err
		}
		if !exists {
			if p == d.Path {
				if err := durable.MkdirAll(d.FS, path.Dir(p), 0o755, true); err != nil {
					return err
				}
			}
			if err := u.mkdir(p); err != nil {
				return err
			}
		}
	}
	for _, p := range []string{u.Area(), u.ScanDir()} {
		exists, err := u.checkOwn(p)
		if err != nil {
			// Made by root and not yet given away: an earlier
			// interrupted run; anything else is refused.
			if owner, mode, _, ierr := u.inspect(p); ierr != nil || owner != 0 || !mode.IsDir() {
				return err
			}
		} else if exists {
			continue
		} else if err := u.mkdir(p); err != nil {
			return err
		}
		if err := d.FS.Chown(p, uid, gid); err != nil {
			return err
		}
		if _, err := u.checkOwn(p); err != nil {
			return err
		}
	}
	return nil
}
