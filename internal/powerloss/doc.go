// Package powerloss checks that a treeshift update survives a power loss
// at any point, in the manner of ALICE and CrashMonkey: it records the
// file operations of a real run, generates the on-disk states a power loss
// could leave, and runs recovery on each.
//
// # Recording
//
// A recorder is a durable.FS wrapped around the real one (the engine's
// Options.WrapFS): every call is made on the host as usual, and recorded,
// in order, in the terms of a model of the filesystem — inodes, and
// directories mapping names to them. Each call becomes the changes it is
// made of on the host:
//
//   - Mkdir, Create, Symlink, Link: a new entry in a directory (Create, and
//     the new file's data);
//   - Rename: one change, which removes the old name and makes the new;
//   - Remove: the removal of an entry; RemoveAll, the removal of each
//     directory's entries, deepest first, then of the top;
//   - WriteFile and WriteStream, as renameio makes them: a temporary file
//     beside the target (".NAME" and digits), its data, an fsync of it, and a
//     rename over the target;
//   - SwapSymlink, as renameio makes it: a temporary directory beside the
//     link, the new link in it, a rename of that link over the old one, and
//     the removal of the directory (or a plain symlink when there was none);
//   - Fsync, SyncDir, SyncFS: syncs.
//
// The run starts from a copy of a staged system, scanned into the model;
// it runs with one worker, so the order of its calls is the same every
// time. When it is over, the model must hold exactly what the run left on
// disk, or the exploration stops: the trace would not be the run's.
//
// # What survives a power loss: the model
//
// A change is one of: a directory's entry made, replaced or removed (a
// rename is one change of both its directories); a file's data; a file's
// mode. Each persists whole or not at all. A change is durable, and
// survives any power loss, once
//
//   - for an entry: its directory has been synced (SyncDir) — for a
//     rename, the directory it renames into;
//   - for a file's data or mode: the file has been synced (Fsync);
//   - for anything: its filesystem has been synced (SyncFS).
//
// An fsync of a file makes its data durable, not its name; a directory
// sync makes names durable, not the data of the files they name. Any subset
// of the changes not yet durable may have persisted, in any combination:
// unsynced changes may be lost, and may persist in another order than they
// were made (only one rule holds: a directory keeps a single name, so a
// rename of a directory persists with every earlier change of its names).
// A file whose data did not persist is empty; one whose data persisted in
// part holds a prefix of it. What an inode is when made — its type, its
// first mode, a link's target — persists with the first entry that names
// it. Syncs are per filesystem: the live directory is one of its own by
// default (Config.Mounts), as /run is on most systems, so a sync of the
// system directory's filesystem makes nothing of the live directory
// durable, and a hard link between the two is refused (the engine then
// copies, as it would).
//
// This is weaker than what ext4 (data=ordered), xfs and btrfs give: their
// journals (btrfs: transactions and log tree) persist metadata changes in
// the order they were made, and ext4 with auto_da_alloc even flushes the
// data of a file renamed over another. A run that survives every state of
// the model survives those filesystems; the converse need not hold.
//
// # Crash states
//
// A crash point is a crash after the first k events (changes and syncs)
// of a trace. At each one the explorer tries: every unsynced change lost;
// every one kept (what a killed process leaves); the unsynced changes of
// each directory, and the data of each file, lost alone (a sync of it
// missing); and random subsets, with kept data cut short now and then. At
// the points just before a sync it also keeps each directory's or file's
// changes alone (they persisted before everything made ahead of them).
// States with the same content are checked once.
//
// # The guarantee checked
//
// Each crash state is written to a directory and opened as the next run
// would open it. Then:
//
//   - every tree live before the run has a live link, and it resolves;
//   - recovery (what treeshift update does first, under the owner lock)
//     succeeds, and leaves the system exactly as it was before the run or
//     exactly as converted, by the status document (every tree's services,
//     place, live state and format) and the stamp; the stamp alone may lag,
//     as it moves after the trees;
//   - an update then succeeds, and leaves the system exactly as converted,
//     stamp included, with no journal and every live link resolving;
//   - once some crash point's state with every unsynced change lost
//     recovers to the converted system, every later crash state does: a
//     committed update never comes undone; and a crash after the run has
//     returned leaves the system exactly as converted.
//
// With Config.Recovery, two recoveries of an interrupted update are
// recorded and explored the same way — one that rolls back (from the
// richest state whose journal is not committed) and one that completes
// (from the poorest whose journal is) — since the next power loss may come
// during recovery.
//
// # Limits
//
// The model covers the system and live directories under one root, not
// what a supervisor does with the processes (the files backend keeps
// states as files; the live state of s6 services is not modeled). A
// crashed run's temporary files are names like renameio's, not the very
// names the run used. Torn writes are cut at half their length, not
// anywhere; data that persisted as garbage (ext4 data=writeback) is not
// modeled. The explored system is small (three trees, five services): the
// interleavings of many trees are the same steps repeated. A tmpfs live
// directory, emptied by a power loss, is not explored (the model would
// only lose every link, which recovery handles as a tree not live). Real
// block devices are exercised separately (see the tests under
// migrate/blockdev_test.go).
package powerloss
