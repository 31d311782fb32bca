package davserver

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/net/webdav"
)

// etagLS is x/net/webdav's in-memory lock system that also holds a
// request to the entity tags of its If header ("(<token> [etag])"),
// which the in-memory one ignores: an If list whose tag is not the
// resource's now fails, as RFC 4918 section 10.4 says. It only ever
// refuses more than the lock system it wraps.
type etagLS struct {
	webdav.LockSystem
	fs *FS
}

func (l etagLS) Confirm(now time.Time, name0, name1 string, conditions ...webdav.Condition) (func(), error) {
	for _, c := range conditions {
		if c.ETag == "" || name0 == "" {
			continue
		}
		if (l.etag(name0) == c.ETag) == c.Not {
			return nil, webdav.ErrConfirmationFailed
		}
	}
	return l.LockSystem.Confirm(now, name0, name1, conditions...)
}

// etag is the resource's entity tag as x/net/webdav sends it (from its
// modification time and size), or "" if there is none.
func (l etagLS) etag(name string) string {
	fi, err := l.fs.Stat(context.Background(), name)
	if err != nil {
		return ""
	}
	return fmt.Sprintf(`"%x%x"`, fi.ModTime().UnixNano(), fi.Size())
}
