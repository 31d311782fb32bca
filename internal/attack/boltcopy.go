package attack

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/blindstore/blindstore/wire"
)

// BoltCopy reads a bbolt file as a copy holder would: page by page, in
// the file's own format, whether a page is reachable or free. Every page
// whose header names it (a page bbolt wrote as a branch or a leaf, live
// or freed since) is parsed, and every 16-byte key that is one of ids is
// recorded with the page's number and a kind: "bolt:branch", or for a
// leaf "bolt:record" (a 48-byte lease record), "bolt:data" (a value of
// blockSize bytes), "bolt:bucket" (a nested bucket's header) or
// "bolt:other".
func BoltCopy(path string, blockSize int, ids map[wire.ID]Owner) (Features, error) {
	file, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("attack: read the bbolt file: %w", err)
	}
	const (
		headerSize   = 16
		branchFlag   = 0x01
		leafFlag     = 0x02
		bucketFlag   = 0x01 // in a leaf element's flags
		leafElemSize = 16
		branchElem   = 16
		magic        = 0xED0CDAED
	)
	if len(file) < 2*4096 {
		return nil, fmt.Errorf("attack: %s is too short for a bbolt file", path)
	}
	// The meta page: header, then magic, version, page size.
	if binary.LittleEndian.Uint32(file[headerSize:]) != magic {
		return nil, fmt.Errorf("attack: %s is not a bbolt file", path)
	}
	pageSize := int(binary.LittleEndian.Uint32(file[headerSize+8:]))
	if pageSize < 512 || pageSize > 1<<20 {
		return nil, fmt.Errorf("attack: %s has a page size of %d", path, pageSize)
	}
	feat := Features{}
	note := func(key []byte, kind string, pg int64) {
		if len(key) != 16 {
			return
		}
		var id wire.ID
		copy(id[:], key)
		if _, ok := ids[id]; ok {
			feat[id] = append(feat[id], Obs{Kind: kind, Rel: "file", Page: pg})
		}
	}
	var parse func(p []byte, pg int64, depth int)
	parse = func(p []byte, pg int64, depth int) {
		flags := binary.LittleEndian.Uint16(p[8:])
		count := int(binary.LittleEndian.Uint16(p[10:]))
		switch {
		case flags&leafFlag != 0:
			for i := 0; i < count; i++ {
				e := headerSize + i*leafElemSize
				if e+leafElemSize > len(p) {
					break
				}
				eflags := binary.LittleEndian.Uint32(p[e:])
				pos := int(binary.LittleEndian.Uint32(p[e+4:]))
				ksize := int(binary.LittleEndian.Uint32(p[e+8:]))
				vsize := int(binary.LittleEndian.Uint32(p[e+12:]))
				k := e + pos
				if pos <= 0 || ksize <= 0 || vsize < 0 || k+ksize+vsize > len(p) {
					continue
				}
				kind := "bolt:other"
				switch {
				case eflags&bucketFlag != 0:
					kind = "bolt:bucket"
					// A small bucket lives inline in its header's value:
					// root 0, then a page of its own.
					v := p[k+ksize : k+ksize+vsize]
					if vsize > 16+headerSize && binary.LittleEndian.Uint64(v) == 0 && depth < 4 {
						parse(v[16:], pg, depth+1)
					}
				case vsize == 48:
					kind = "bolt:record"
				case vsize == blockSize:
					kind = "bolt:data"
				}
				note(p[k:k+ksize], kind, pg)
			}
		case flags&branchFlag != 0:
			for i := 0; i < count; i++ {
				e := headerSize + i*branchElem
				if e+branchElem > len(p) {
					break
				}
				pos := int(binary.LittleEndian.Uint32(p[e:]))
				ksize := int(binary.LittleEndian.Uint32(p[e+4:]))
				k := e + pos
				if pos <= 0 || ksize <= 0 || k+ksize > len(p) {
					continue
				}
				note(p[k:k+ksize], "bolt:branch", pg)
			}
		}
	}
	for pg := int64(2); int(pg+1)*pageSize <= len(file); pg++ {
		p := file[int(pg)*pageSize:]
		if int64(binary.LittleEndian.Uint64(p)) != pg {
			continue // not a page header: overflow, zeroed, never written
		}
		parse(p, pg, 0)
	}
	return feat, nil
}
