package attack

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/blindstore/blindstore/wire"
	"github.com/jackc/pgx/v5"
)

// PostgresCopy reads the database at url as a copy holder would read its
// files (get_raw_page reads a page as the buffer pool holds it, which is
// what the file holds after the next checkpoint): every heap page of every table of the public schema (partitions
// included) and of their TOAST tables, through pageinspect, so dead row
// versions that VACUUM has not removed yet count too. It needs a
// superuser (pageinspect reads raw pages) and creates the extension if it
// is missing.
//
// For each tuple that holds a block id it records the relation, xmin,
// xmax, hint bits, page and position; for each TOAST pointer in a block row it
// records, for every chunk of that value, the TOAST table, the chunk's
// xmin, xmax, page, position and the value id.
func PostgresCopy(ctx context.Context, url string) (Features, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("attack: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pageinspect"); err != nil {
		return nil, fmt.Errorf("attack: pageinspect: %w", err)
	}
	rows, err := conn.Query(ctx, `SELECT c.relname, c.reltoastrelid::regclass::text
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind = 'r'`)
	if err != nil {
		return nil, fmt.Errorf("attack: list tables: %w", err)
	}
	type table struct{ name, toast string }
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var t table
		return t, r.Scan(&t.name, &t.toast)
	})
	if err != nil {
		return nil, fmt.Errorf("attack: list tables: %w", err)
	}
	feat := Features{}
	for _, t := range tables {
		idAt, kind := -1, ""
		switch {
		case t.name == "blocks":
			idAt, kind = 0, "blocks" // id uuid first
		case strings.HasPrefix(t.name, "blocks_hot_"):
			idAt, kind = 0, "blocks_hot"
		case strings.HasPrefix(t.name, "leases_hot_"):
			idAt, kind = 0, "leases_hot"
		case strings.HasPrefix(t.name, "leases_"):
			idAt, kind = 17, "leases" // after bucket: a 1-byte varlena header and 16 bytes
		}
		if idAt < 0 {
			continue // meta, the schema version, pageinspect's own
		}
		toastOf := map[uint32]wire.ID{}
		err := heapTuples(ctx, conn, t.name, func(tp tuple) {
			if len(tp.data) < idAt+16 {
				return
			}
			var id wire.ID
			copy(id[:], tp.data[idAt:idAt+16])
			o := Obs{Kind: kind, Rel: t.name, Xmin: tp.xmin, Xmax: tp.xmax, Page: tp.page, Pos: tp.pos, Hint: tp.hint}
			if v, ok := toastPointer(tp.data); ok {
				o.OID = uint64(v)
				toastOf[v] = id
			}
			feat[id] = append(feat[id], o)
		})
		if err != nil {
			return nil, err
		}
		if t.toast == "-" || len(toastOf) == 0 {
			continue
		}
		err = heapTuples(ctx, conn, t.toast, func(tp tuple) {
			if len(tp.data) < 4 {
				return
			}
			v := binary.LittleEndian.Uint32(tp.data[:4])
			if id, ok := toastOf[v]; ok {
				feat[id] = append(feat[id], Obs{Kind: "toast:" + kind, Rel: t.toast, Xmin: tp.xmin, Xmax: tp.xmax, Page: tp.page, Pos: tp.pos, OID: uint64(v), Hint: tp.hint})
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return feat, nil
}

type tuple struct {
	xmin, xmax uint64
	page, pos  int64
	hint       uint16
	data       []byte
}

// heapTuples calls fn for every tuple with storage on every page of rel.
func heapTuples(ctx context.Context, conn *pgx.Conn, rel string, fn func(tuple)) error {
	rows, err := conn.Query(ctx, `SELECT b.blk, h.lp, h.t_xmin::text, h.t_xmax::text, h.t_infomask, h.t_data
		FROM generate_series(0, (pg_relation_size($1::regclass) / current_setting('block_size')::int) - 1) AS b(blk),
		LATERAL heap_page_items(get_raw_page($1::text, b.blk::int)) h
		WHERE h.lp_flags = 1 AND h.t_data IS NOT NULL`, rel)
	if err != nil {
		return fmt.Errorf("attack: read %s: %w", rel, err)
	}
	defer rows.Close()
	for rows.Next() {
		var blk int64
		var lp int32
		var xmin, xmax string
		var infomask int32
		var data []byte
		if err := rows.Scan(&blk, &lp, &xmin, &xmax, &infomask, &data); err != nil {
			return fmt.Errorf("attack: read %s: %w", rel, err)
		}
		xn, err1 := strconv.ParseUint(xmin, 10, 64)
		xx, err2 := strconv.ParseUint(xmax, 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("attack: read %s: transaction ids %q %q", rel, xmin, xmax)
		}
		// HEAP_XMIN_COMMITTED | HEAP_XMIN_INVALID | HEAP_XMAX_COMMITTED | HEAP_XMAX_INVALID
		hint := 1 + uint16(infomask&0x0f00)>>8
		fn(tuple{xmin: xn, xmax: xx, page: blk, pos: blk<<16 | int64(lp), hint: hint, data: data})
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("attack: read %s: %w", rel, err)
	}
	return nil
}

// toastPointer finds an on-disk TOAST pointer in a block row: after the
// id (16 bytes), the proof hash and ETag as short varlenas (1 + 32 and
// 1 + 16 bytes), the data column as an external datum: header byte 0x01,
// tag 18 (VARTAG_ONDISK), then va_rawsize, va_extinfo, va_valueid and
// va_toastrelid, little-endian.
func toastPointer(data []byte) (uint32, bool) {
	const at = 16 + 33 + 17
	if len(data) < at+2+16 || data[at] != 0x01 || data[at+1] != 18 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(data[at+2+8:]), true
}
