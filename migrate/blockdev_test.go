package migrate_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A power loss on real block devices, at durable steps of an update. The
// staged system is on two ext4 filesystems — the root, and the live
// directory, a filesystem of its own as /run is on most systems — each on
// a loop device. The faultinject treeshift pauses after step N, and the
// devices are then cut off from everything not yet written to them: by
// dm-flakey dropping every write from then on (as xfstests does), or,
// without device-mapper, by copying the loop devices' backing files (what
// the filesystems had sent to the devices by then; they are mounted with
// commit=600, so nothing is committed behind the run's back). The copies
// are mounted (ext4 replays its journal), and the next update must recover
// them as after any crash.
//
// A real ext4 keeps more than the explorer's model does (a sync of a file
// commits the whole filesystem's journal), so these tests check treeshift
// against what a real filesystem does, not that each sync is needed: that
// is internal/powerloss's job, which runs everywhere. Where these tests
// cannot run (not root, no loop devices, no device-mapper) they skip,
// saying what is missing.

// needLoop skips t unless the machine can make and mount loop devices.
func needLoop(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("block device crash test: needs root (losetup, mount)")
	}
	for _, c := range []string{"losetup", "mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("block device crash test: %s is not installed", c)
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skipf("block device crash test: no loop devices (%v)", err)
	}
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// attach makes image a loop device until the test ends.
func attach(t *testing.T, image string) string {
	t.Helper()
	dev := sh(t, "losetup", "-f", "--show", image)
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// mount mounts dev on dir (a new directory if ""), and returns dir and
// what unmounts it, which the end of the test does if nothing else did.
func mount(t *testing.T, dev, dir string, opts ...string) (string, func()) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	args := []string{dev, dir}
	if len(opts) > 0 {
		args = append([]string{"-o", strings.Join(opts, ",")}, args...)
	}
	sh(t, "mount", args...)
	done := false
	t.Cleanup(func() {
		if !done {
			exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir, func() {
		if !done {
			done = true
			sh(t, "umount", dir)
		}
	}
}

// images are the two ext4 images of a staged system.
type images struct{ sys, live string }

// liveDir is the live directory below a root.
const liveDir = "run/treeshift"

// baseImages writes the staged root into two new images, whole.
func baseImages(t *testing.T, staged string) images {
	t.Helper()
	dir := t.TempDir()
	im := images{filepath.Join(dir, "sys.img"), filepath.Join(dir, "live.img")}
	for _, img := range []string{im.sys, im.live} {
		sh(t, "truncate", "-s", "64M", img)
		sh(t, "mkfs.ext4", "-q", "-F", img)
	}
	sys, unmountSys := mount(t, attach(t, im.sys), "")
	sh(t, "cp", "-a", staged, filepath.Join(sys, "root"))
	live, unmountLive := mount(t, attach(t, im.live), "")
	sh(t, "cp", "-a", filepath.Join(staged, liveDir)+"/.", live)
	unmountLive()
	sh(t, "rm", "-rf", filepath.Join(sys, "root", liveDir))
	sh(t, "mkdir", filepath.Join(sys, "root", liveDir))
	unmountSys()
	return im
}

// copyImages copies both images.
func copyImages(t *testing.T, im images) images {
	t.Helper()
	dir := t.TempDir()
	cp := images{filepath.Join(dir, "sys.img"), filepath.Join(dir, "live.img")}
	sh(t, "cp", "--sparse=always", im.sys, cp.sys)
	sh(t, "cp", "--sparse=always", im.live, cp.live)
	return cp
}

// mountSystem mounts the root's device and the live directory's on it, and
// returns the root and what unmounts both.
func mountSystem(t *testing.T, sysDev, liveDev string, opts ...string) (string, func()) {
	t.Helper()
	dir, unmountSys := mount(t, sysDev, "", opts...)
	root := filepath.Join(dir, "root")
	_, unmountLive := mount(t, liveDev, filepath.Join(root, liveDir), opts...)
	return root, func() {
		unmountLive()
		unmountSys()
	}
}

// pausedUpdate starts an update of root that pauses after durable step n,
// and returns once it has.
func pausedUpdate(t *testing.T, bin, root string, n int) *exec.Cmd {
	t.Helper()
	pause := filepath.Join(t.TempDir(), "pause")
	cmd := exec.Command(bin, "--root", root, "update")
	cmd.Env = append(os.Environ(), fmt.Sprintf("TREESHIFT_PAUSE_AFTER=%d", n), "TREESHIFT_PAUSE_FILE="+pause)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(pause + ".paused"); err == nil {
			return cmd
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("update never paused after step %d:\n%s", n, out.String())
		}
	}
}

func kill(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
}

// writes returns the number of writes the device dev has completed and
// has in flight.
func writes(t *testing.T, dev string) (done, inFlight string) {
	t.Helper()
	b, err := os.ReadFile("/sys/block/" + filepath.Base(dev) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	return f[4], f[8]
}

// snapshot copies the backing file of the loop device dev once a copy
// began and ended with no write in flight or completed in between: the
// device's content at one instant.
func snapshot(t *testing.T, dev, img string) string {
	t.Helper()
	snap := img + ".snap"
	for i := 0; ; i++ {
		w, busy := writes(t, dev)
		sh(t, "cp", "--sparse=always", img, snap)
		if w2, _ := writes(t, dev); w2 == w && busy == "0" {
			return snap
		}
		if i == 20 {
			t.Fatalf("%s never stopped writing", dev)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recoverImages mounts the images left by a power loss and checks that the
// next update recovers them.
func recoverImages(t *testing.T, bin string, im images, want, when string) {
	t.Helper()
	root, unmount := mountSystem(t, attach(t, im.sys), attach(t, im.live))
	defer unmount()
	checkLinks(t, root, when)
	if out, code := run(t, bin, nil, "--root", root, "update"); code != 0 {
		t.Fatalf("%s: the next update: exit %d\n%s", when, code, out)
	}
	checkLinks(t, root, when+" and an update")
	if got := normalizedStatus(t, bin, root, 3); got != want {
		t.Fatalf("%s: after the next update the state differs from before:\n%s\nwant:\n%s", when, got, want)
	}
}

// blockSteps is the durable steps to crash at: all of them for make crash;
// otherwise (each takes two filesystem images) the step after each
// filesystem sync, where a missing sync of the other filesystem shows, and
// the last.
func blockSteps(t *testing.T, bin, staged string) []int {
	out, _ := run(t, bin, []string{"TREESHIFT_TRACE_STEPS=1"}, "--root", copyRoot(t, staged), "update")
	steps := len(regexp.MustCompile(`(?m)^step \d+: `).FindAllString(out, -1))
	if steps < 20 {
		t.Fatalf("only %d durable steps traced:\n%s", steps, out)
	}
	var ns []int
	if os.Getenv("TREESHIFT_CRASH_ALL") != "" {
		for n := 1; n <= steps; n++ {
			ns = append(ns, n)
		}
		return ns
	}
	for _, m := range regexp.MustCompile(`(?m)^step (\d+): syncfs `).FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[1])
		ns = append(ns, n)
	}
	return append(ns, steps)
}

func TestPowerLossOnABlockDevice(t *testing.T) {
	t.Run("loop", func(t *testing.T) {
		needLoop(t)
		bin := faultBinary(t)
		staged := stageRoot(t)
		want := normalizedStatus(t, bin, staged, 0)
		base := baseImages(t, staged)
		steps := blockSteps(t, bin, staged)
		for _, n := range steps {
			when := fmt.Sprintf("after a power loss at step %d", n)
			im := copyImages(t, base)
			sysDev, liveDev := attach(t, im.sys), attach(t, im.live)
			// No periodic journal commit: what reaches the devices is what
			// the run made durable, and whatever writeback sent.
			root, unmount := mountSystem(t, sysDev, liveDev, "commit=600")
			kill(pausedUpdate(t, bin, root, n))
			lost := images{snapshot(t, sysDev, im.sys), snapshot(t, liveDev, im.live)}
			unmount()
			recoverImages(t, bin, lost, want, when)
		}
		t.Logf("%d power losses on loop devices recovered", len(steps))
	})
	t.Run("dm-flakey", func(t *testing.T) {
		needLoop(t)
		if _, err := exec.LookPath("dmsetup"); err != nil {
			t.Skip("dm-flakey crash test: dmsetup is not installed (Debian: dmsetup)")
		}
		if f, err := os.OpenFile("/dev/mapper/control", os.O_RDWR, 0); err != nil {
			t.Skipf("dm-flakey crash test: no device-mapper in this kernel (%v)", err)
		} else {
			f.Close()
		}
		if targets, err := exec.Command("dmsetup", "targets").Output(); err != nil || !regexp.MustCompile(`(?m)^flakey\s`).Match(targets) {
			if exec.Command("modprobe", "dm-flakey").Run() != nil {
				t.Skip("dm-flakey crash test: the kernel has no dm-flakey target")
			}
		}
		bin := faultBinary(t)
		staged := stageRoot(t)
		want := normalizedStatus(t, bin, staged, 0)
		base := baseImages(t, staged)
		steps := blockSteps(t, bin, staged)
		for _, n := range steps {
			when := fmt.Sprintf("after a power loss at step %d (dm-flakey)", n)
			im := copyImages(t, base)
			var names, drop [2]string
			for i, img := range []string{im.sys, im.live} {
				dev := attach(t, img)
				size := sh(t, "blockdev", "--getsz", dev)
				name := fmt.Sprintf("treeshift-test-%d-%d-%d", os.Getpid(), n, i)
				// Up for 180 s, down never: every write passes.
				sh(t, "dmsetup", "create", name, "--table", fmt.Sprintf("0 %s flakey %s 0 180 0", size, dev))
				t.Cleanup(func() { exec.Command("dmsetup", "remove", "--retry", name).Run() })
				names[i], drop[i] = name, fmt.Sprintf("0 %s flakey %s 0 0 180 1 drop_writes", size, dev)
			}
			root, unmount := mountSystem(t, "/dev/mapper/"+names[0], "/dev/mapper/"+names[1])
			cmd := pausedUpdate(t, bin, root, n)
			// The power goes: from now on both devices drop every write.
			for i, name := range names {
				sh(t, "dmsetup", "suspend", "--nolockfs", name)
				sh(t, "dmsetup", "load", name, "--table", drop[i])
				sh(t, "dmsetup", "resume", name)
			}
			kill(cmd)
			unmount()
			for _, name := range names {
				sh(t, "dmsetup", "remove", name)
			}
			recoverImages(t, bin, im, want, when)
		}
		t.Logf("%d power losses under dm-flakey recovered", len(steps))
	})
}
