// Package cdb reads and writes constant databases in D. J. Bernstein's cdb
// layout: a 2048-byte header of 256 (position, slot count) pairs, the records
// (key length, data length, key, data), then 256 open-addressing hash tables
// of (hash, record position) slots. All integers are little-endian uint32 and
// keys are hashed with djb's hash, h = ((h << 5) + h) ^ c starting at 5381.
//
// The reader trusts nothing: every offset and length is checked against the
// file size, so truncated or garbage input yields an error, never a panic.
package cdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

const headerSize = 256 * 8

// Hash is the djb hash cdb uses to place keys.
func Hash(key []byte) uint32 {
	h := uint32(5381)
	for _, c := range key {
		h = ((h << 5) + h) ^ uint32(c)
	}
	return h
}

// Writer accumulates records in memory and lays them out on Bytes.
type Writer struct {
	buf   bytes.Buffer
	slots [256][]slot
	n     int
}

type slot struct{ hash, pos uint32 }

// NewWriter returns an empty database under construction.
func NewWriter() *Writer {
	w := &Writer{}
	w.buf.Write(make([]byte, headerSize))
	return w
}

// Add appends a record. Keys may repeat; Get returns the first one added.
func (w *Writer) Add(key, data []byte) error {
	pos := w.buf.Len()
	if uint64(pos)+8+uint64(len(key))+uint64(len(data)) > 1<<32-1 {
		return errors.New("cdb: database exceeds 4 GiB")
	}
	var hdr [8]byte
	binary.LittleEndian.PutUint32(hdr[0:], uint32(len(key)))
	binary.LittleEndian.PutUint32(hdr[4:], uint32(len(data)))
	w.buf.Write(hdr[:])
	w.buf.Write(key)
	w.buf.Write(data)
	h := Hash(key)
	w.slots[h&255] = append(w.slots[h&255], slot{h, uint32(pos)})
	w.n++
	return nil
}

// Bytes lays out the hash tables and returns the complete database.
func (w *Writer) Bytes() ([]byte, error) {
	out := bytes.Clone(w.buf.Bytes())
	for i, entries := range w.slots {
		pos := len(out)
		n := len(entries) * 2
		binary.LittleEndian.PutUint32(out[i*8:], uint32(pos))
		binary.LittleEndian.PutUint32(out[i*8+4:], uint32(n))
		table := make([]slot, n)
		for _, e := range entries {
			j := int((e.hash >> 8) % uint32(n))
			for table[j].pos != 0 {
				j = (j + 1) % n
			}
			table[j] = e
		}
		for _, s := range table {
			out = binary.LittleEndian.AppendUint32(out, s.hash)
			out = binary.LittleEndian.AppendUint32(out, s.pos)
		}
		if uint64(len(out)) > 1<<32-1 {
			return nil, errors.New("cdb: database exceeds 4 GiB")
		}
	}
	return out, nil
}

// Reader looks up keys in a database held in memory.
type Reader struct {
	data []byte
}

// Open validates the header of b and returns a reader over it. It checks that
// every table lies inside b; records are checked as they are read.
func Open(b []byte) (*Reader, error) {
	if len(b) < headerSize {
		return nil, fmt.Errorf("truncated: %d bytes, a cdb header alone is %d", len(b), headerSize)
	}
	for i := 0; i < 256; i++ {
		pos := uint64(binary.LittleEndian.Uint32(b[i*8:]))
		n := uint64(binary.LittleEndian.Uint32(b[i*8+4:]))
		if pos < headerSize || pos+n*8 > uint64(len(b)) {
			return nil, fmt.Errorf("corrupt: hash table %d (offset %d, %d slots) lies outside the %d-byte file", i, pos, n, len(b))
		}
	}
	return &Reader{data: b}, nil
}

// Verify checks the whole structure against the layout Writer produces: the
// 256 tables follow the records contiguously and end the file, each table has
// twice as many slots as entries, and every slot is either empty or names the
// start of a record whose key hashes to the slot's hash and table. After
// Verify, any single corrupted byte outside the records' contents has been
// caught; callers checksum the contents themselves.
func (r *Reader) Verify() error {
	starts := map[uint32][]byte{} // record offset -> key
	end := r.recordsEnd()
	for pos := uint64(headerSize); pos < end; {
		k, v, err := r.record(pos)
		if err != nil {
			return err
		}
		starts[uint32(pos)] = k
		pos += 8 + uint64(len(k)) + uint64(len(v))
	}
	next := end
	used := 0
	for i := 0; i < 256; i++ {
		tpos := uint64(binary.LittleEndian.Uint32(r.data[i*8:]))
		n := uint64(binary.LittleEndian.Uint32(r.data[i*8+4:]))
		if tpos != next {
			return fmt.Errorf("corrupt: hash table %d starts at offset %d, expected %d", i, tpos, next)
		}
		next = tpos + n*8
		full := uint64(0)
		for j := uint64(0); j < n; j++ {
			h := binary.LittleEndian.Uint32(r.data[tpos+j*8:])
			p := binary.LittleEndian.Uint32(r.data[tpos+j*8+4:])
			if p == 0 {
				if h != 0 {
					return fmt.Errorf("corrupt: empty slot %d of hash table %d carries hash %#x", j, i, h)
				}
				continue
			}
			k, ok := starts[p]
			if !ok {
				return fmt.Errorf("corrupt: slot %d of hash table %d points at offset %d, not a record", j, i, p)
			}
			if Hash(k) != h || h&255 != uint32(i) {
				return fmt.Errorf("corrupt: slot %d of hash table %d has hash %#x, its record's key hashes to %#x", j, i, h, Hash(k))
			}
			full++
		}
		if n != 2*full {
			return fmt.Errorf("corrupt: hash table %d has %d slots for %d records, expected %d", i, n, full, 2*full)
		}
		used += int(full)
	}
	if next != uint64(len(r.data)) {
		return fmt.Errorf("corrupt: %d bytes after the last hash table", uint64(len(r.data))-next)
	}
	if used != len(starts) {
		return fmt.Errorf("corrupt: %d records but %d hash slots point at them", len(starts), used)
	}
	return nil
}

// Get returns the data of the first record whose key is key, and whether one
// was found.
func (r *Reader) Get(key []byte) ([]byte, bool, error) {
	h := Hash(key)
	i := int(h & 255)
	tpos := binary.LittleEndian.Uint32(r.data[i*8:])
	n := binary.LittleEndian.Uint32(r.data[i*8+4:])
	if n == 0 {
		return nil, false, nil
	}
	start := (h >> 8) % n
	for k := uint32(0); k < n; k++ {
		j := (start + k) % n
		off := uint64(tpos) + uint64(j)*8
		sh := binary.LittleEndian.Uint32(r.data[off:])
		sp := binary.LittleEndian.Uint32(r.data[off+4:])
		if sp == 0 {
			return nil, false, nil
		}
		if sh != h {
			continue
		}
		k, v, err := r.record(uint64(sp))
		if err != nil {
			return nil, false, err
		}
		if bytes.Equal(k, key) {
			return v, true, nil
		}
	}
	return nil, false, nil
}

// record reads the record at pos, checking it lies inside the records area.
func (r *Reader) record(pos uint64) (key, data []byte, err error) {
	end := r.recordsEnd()
	if pos < headerSize || pos+8 > end {
		return nil, nil, fmt.Errorf("corrupt: record offset %d outside the records area", pos)
	}
	kl := uint64(binary.LittleEndian.Uint32(r.data[pos:]))
	dl := uint64(binary.LittleEndian.Uint32(r.data[pos+4:]))
	if pos+8+kl+dl > end {
		return nil, nil, fmt.Errorf("corrupt: record at offset %d (key %d bytes, data %d bytes) runs past the records area", pos, kl, dl)
	}
	return r.data[pos+8 : pos+8+kl], r.data[pos+8+kl : pos+8+kl+dl], nil
}

// recordsEnd is where the first hash table starts: records live before it.
func (r *Reader) recordsEnd() uint64 {
	end := uint64(len(r.data))
	for i := 0; i < 256; i++ {
		if p := uint64(binary.LittleEndian.Uint32(r.data[i*8:])); p < end {
			end = p
		}
	}
	return end
}

// ForEach calls fn for every record in file order, stopping at the first error.
func (r *Reader) ForEach(fn func(key, data []byte) error) error {
	end := r.recordsEnd()
	for pos := uint64(headerSize); pos < end; {
		k, v, err := r.record(pos)
		if err != nil {
			return err
		}
		if err := fn(k, v); err != nil {
			return err
		}
		pos += 8 + uint64(len(k)) + uint64(len(v))
	}
	return nil
}
