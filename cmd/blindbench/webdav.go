package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blindstore/blindstore/internal/proc"
)

// webdavTransfers is rclone's --transfers for the rows of many files:
// each PUT is answered once its file is committed, and files that arrive
// together are committed together, so parallel transfers make batches.
const webdavTransfers = 64

// webdavUploaders is the number of concurrent uploads of the memory row.
const webdavUploaders = 8

// webdavRows measures blind serve webdav with rclone against the blind
// CLI on the same server, in the same run: a large file in and out, a
// folder of many small files in, and the server's peak memory while
// webdavUploaders clients upload large files at once.
func (b *bench) webdavRows(ctx context.Context) []Row {
	c := b.cfg
	size := fmtBytes(c.fileSize)
	in, out := "webdav rclone copy in "+size, "webdav rclone copy out "+size
	many := fmt.Sprintf("webdav rclone copy in %d small files", c.webdavFiles)
	unpaced := fmt.Sprintf("webdav PUT of %d small files, unpaced client", c.webdavFiles)
	mem := fmt.Sprintf("webdav server peak RSS, %d uploads of %s", webdavUploaders, fmtBytes(c.webdavUploadSize))
	names := []string{in, out, many, unpaced, mem}
	all := func(f func(string) Row) []Row {
		rows := make([]Row, len(names))
		for i, n := range names {
			rows[i] = f(n)
		}
		return rows
	}
	fail := func(err error) []Row { return all(func(n string) Row { return failRow("webdav", n, err) }) }
	rclone := lookPath("rclone")
	switch {
	case !b.bins.has("blind"):
		return all(func(n string) Row { return skipRow("webdav", n, "blind CLI not built") })
	case rclone == "":
		return all(func(n string) Row { return skipRow("webdav", n, "rclone not installed: apt-get install rclone") })
	}
	need := time.Duration(4*c.fileSize/(20<<20))*time.Second + 30*time.Second
	if why, ok := b.budget(ctx, need); !ok {
		return all(func(n string) Row { return skipRow("webdav", n, why) })
	}
	acc, err := b.newAccount(ctx, "webdav", "webdav-bench")
	if err != nil {
		return fail(err)
	}
	defer acc.close()
	work, env, blind := acc.work, acc.env, acc.blind
	dav, err := startWebDAV(ctx, b.bins.path("blind"), env)
	if err != nil {
		return fail(err)
	}
	defer dav.stop()
	conf := filepath.Join(work, "rclone.conf")
	if err := dav.rcloneConfig(ctx, rclone, conf); err != nil {
		return fail(err)
	}
	rc := func(args ...string) (cmdStat, error) {
		return runTimed(ctx, append(childEnv("RCLONE_"), "RCLONE_CONFIG="+conf), work, rclone, args...)
	}

	// One large file, in and out, against blind put and get of it, in
	// alternating order over the rounds.
	b.logf("webdav: %s in and out through rclone, against blind put and get, %d rounds", size, c.fileRounds)
	var putT, getT, inT, outT time.Duration
	for round := 0; round < c.fileRounds; round++ {
		src := filepath.Join(work, fmt.Sprintf("big-%d.bin", round))
		sum, err := writeRandomFile(src, c.fileSize)
		if err != nil {
			return fail(err)
		}
		dir := filepath.Join(work, fmt.Sprintf("out-%d", round))
		steps := []func() error{
			func() error {
				st, err := blind("put", src, "--as", fmt.Sprintf("blind/big-%d.bin", round))
				putT += st.took
				return err
			},
			func() error {
				st, err := rc("copyto", src, fmt.Sprintf("bs:dav/big-%d.bin", round))
				inT += st.took
				return err
			},
			func() error {
				p := filepath.Join(dir, "blind.bin")
				st, err := blind("get", fmt.Sprintf("blind/big-%d.bin", round), "-o", p)
				getT += st.took
				if err == nil {
					err = checkFile(p, c.fileSize, sum)
				}
				os.Remove(p)
				return err
			},
			func() error {
				p := filepath.Join(dir, "rclone.bin")
				st, err := rc("copyto", fmt.Sprintf("bs:dav/big-%d.bin", round), p)
				outT += st.took
				if err == nil {
					err = checkFile(p, c.fileSize, sum)
				}
				os.Remove(p)
				return err
			},
		}
		order := []int{0, 1, 2, 3}
		if round%2 == 1 {
			order = []int{1, 0, 3, 2}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fail(err)
		}
		for _, i := range order {
			if err := steps[i](); err != nil {
				return fail(fmt.Errorf("round %d: %w", round+1, err))
			}
		}
		os.Remove(src)
	}
	total := float64(c.fileSize) * float64(c.fileRounds) / mib
	rate := func(d time.Duration) float64 { return total / d.Seconds() }
	rowIn := Row{Group: "webdav", Name: in, Figure: rate(inT), Unit: "MiB/s", Baseline: rate(putT), BaselineName: "blind put",
		Target: &Target{On: "ratio", Op: ">=", Value: 0.8},
		Note:   "rclone copyto into blind serve webdav vs blind put of the same file, wall time of each command; blind put runs Argon2id to open the session, the server had it open already"}
	rowIn.judge()
	rowOut := Row{Group: "webdav", Name: out, Figure: rate(outT), Unit: "MiB/s", Baseline: rate(getT), BaselineName: "blind get",
		Target: &Target{On: "ratio", Op: ">=", Value: 0.8},
		Note:   "rclone copyto out of blind serve webdav vs blind get into a file, each verified"}
	rowOut.judge()
	rows := []Row{rowIn, rowOut}

	// A folder of small files.
	if why, ok := b.budget(ctx, time.Duration(c.webdavFiles/20)*time.Second+10*time.Second); !ok {
		rows = append(rows, skipRow("webdav", many, why), skipRow("webdav", unpaced, why))
	} else {
		rows = append(rows, b.webdavManyRows(ctx, many, unpaced, work, dav, blind, rc)...)
	}

	// Memory while several clients upload large files.
	rows = append(rows, b.webdavMemoryRow(ctx, mem, dav))
	return rows
}

// webdavManyRows puts a folder of small files with blind put, copies it
// in with rclone, then PUTs it again with a client of this process that
// makes rclone's requests without rclone's pacing: the first row is the
// target, the second what the server itself does with small files.
func (b *bench) webdavManyRows(ctx context.Context, name, unpacedName, work string, dav *webdavProc, blind, rc func(args ...string) (cmdStat, error)) []Row {
	c := b.cfg
	fail := func(err error) []Row { return []Row{failRow("webdav", name, err), failRow("webdav", unpacedName, err)} }
	b.logf("webdav: %d small files through rclone (--transfers %d), against blind put of the folder", c.webdavFiles, webdavTransfers)
	folder := filepath.Join(work, "many")
	var rels []string
	for i := range c.webdavFiles {
		rel := filepath.Join(fmt.Sprintf("d%02d", i%50), fmt.Sprintf("f%05d.txt", i))
		p := filepath.Join(folder, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fail(err)
		}
		if err := os.WriteFile(p, randomKiB(), 0o644); err != nil {
			return fail(err)
		}
		rels = append(rels, filepath.ToSlash(rel))
	}
	put, err := blind("put", folder, "--as", "blind/many")
	if err != nil {
		return fail(fmt.Errorf("blind put: %w", err))
	}
	in, err := rc("copy", "--transfers", fmt.Sprint(webdavTransfers), folder, "bs:dav/many")
	if err != nil {
		return fail(fmt.Errorf("rclone copy: %w", err))
	}
	filesPerSec := func(d time.Duration) float64 { return float64(c.webdavFiles) / d.Seconds() }
	r := Row{Group: "webdav", Name: name, Figure: filesPerSec(in.took), Unit: "files/s", Baseline: filesPerSec(put.took), BaselineName: "blind put FOLDER",
		Target: &Target{On: "ratio", Op: ">=", Value: 0.5},
		Note: fmt.Sprintf("rclone copy --transfers %d: %.1f s; blind put of the folder: %.1f s. rclone makes 3 requests per file (MKCOL of its folder, PUT, PROPFIND) and, before 1.63, paces a webdav remote at one request per 10 ms whatever the server (the configuration's pacer_min_sleep = 0 lifts that from 1.63 on): at most 33 files/s there",
			webdavTransfers, in.took.Seconds(), put.took.Seconds())}
	r.judge()

	b.logf("webdav: the same %d files PUT by %d clients making rclone's requests without its pacing", c.webdavFiles, webdavTransfers)
	took, committed, err := dav.putFiles(ctx, "dav/unpaced", folder, rels, webdavTransfers)
	if err != nil {
		return []Row{r, failRow("webdav", unpacedName, err)}
	}
	u := Row{Group: "webdav", Name: unpacedName, Figure: filesPerSec(took), Unit: "files/s", Baseline: filesPerSec(put.took), BaselineName: "blind put FOLDER",
		Note: fmt.Sprintf("%d connections, each file MKCOL of its folder, PUT, PROPFIND as rclone does, with no pause between requests: %.1f s to the last answer (a small PUT is answered once in the server's journal); every file in the account %.1f s after the start (a DELETE then, which waits for the journal's commits, answered); the server's own pace, which rclone reaches only with its pacing off",
			webdavTransfers, took.Seconds(), committed.Seconds()),
		Extra: map[string]float64{"committed_s": committed.Seconds(), "committed_files_per_s": filesPerSec(committed)}}
	u.judge()
	return []Row{r, u}
}

// webdavMemoryRow uploads webdavUploaders files at once over plain HTTP
// PUTs and follows the server's resident memory with a memSampler.
func (b *bench) webdavMemoryRow(ctx context.Context, name string, dav *webdavProc) Row {
	c := b.cfg
	b.logf("webdav: %d uploads of %s at once, server memory", webdavUploaders, fmtBytes(c.webdavUploadSize))
	before, _ := readMemStatus(dav.p.Pid())
	mem := startMemSampler(dav.p.Pid())
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, webdavUploaders)
	for i := range webdavUploaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := io.LimitReader(mrand.NewChaCha8([32]byte{byte(i)}), c.webdavUploadSize)
			req, err := http.NewRequestWithContext(ctx, http.MethodPut, fmt.Sprintf("%s/load-%d.bin", dav.url, i), body)
			if err != nil {
				errs <- err
				return
			}
			req.ContentLength = c.webdavUploadSize
			req.SetBasicAuth("blind", dav.pass)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusNoContent {
				errs <- fmt.Errorf("PUT %d: %s", i, resp.Status)
			}
		}()
	}
	wg.Wait()
	took := time.Since(t0)
	peak, _ := mem.stop()
	close(errs)
	if err := <-errs; err != nil {
		return failRow("webdav", name, err)
	}
	r := Row{Group: "webdav", Name: name, Figure: float64(peak) / mib, Unit: "MiB",
		Note: fmt.Sprintf("peak resident memory of blind serve webdav (the kernel's high-water mark since the uploads began, and polls; %.0f MiB before); %s sent in %.1f s (%.0f MiB/s); the uploads share a budget of at most 14 of the server's write batches of block buffers (56 MiB with its default 4 MiB batches), kept for the next uploads for 30 s, whatever the files' sizes and number",
			float64(before.rss)/mib, fmtBytes(webdavUploaders*c.webdavUploadSize), took.Seconds(), float64(webdavUploaders*c.webdavUploadSize)/mib/took.Seconds()),
		Extra: map[string]float64{"before_mib": float64(before.rss) / mib}}
	r.judge()
	return r
}

// webdavProc is a running blind serve webdav.
type webdavProc struct {
	p    *proc.Process
	url  string
	pass string
}

func startWebDAV(ctx context.Context, blind string, env []string) (*webdavProc, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	pass := hex.EncodeToString(b)
	cmd := exec.Command(blind, "serve", "webdav", "--listen", "127.0.0.1:0")
	cmd.Env = append(append([]string(nil), env...), "BLIND_WEBDAV_PASSWORD="+pass)
	var logs proc.Buffer
	p, err := proc.Start(ctx, cmd, &logs, time.Minute)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, oneLine(logs.String()))
	}
	return &webdavProc{p: p, url: p.URL, pass: pass}, nil
}

func (d *webdavProc) stop() { d.p.Kill() }

// putFiles PUTs the files rels of the local folder under dir on d from
// workers connections, each file as rclone's webdav remote sends it
// (MKCOL of its folder, PUT, PROPFIND of the file) but without its
// pacing. It returns the time to the last answer, and to the answer of a
// DELETE of the first file sent then, which the server gives only once
// every file answered before is in the account.
func (d *webdavProc) putFiles(ctx context.Context, dir, folder string, rels []string, workers int) (answered, committed time.Duration, err error) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}}
	defer hc.CloseIdleConnections()
	call := func(method, path string, body []byte, header map[string]string, ok ...int) error {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, d.url+"/"+path, rd)
		if err != nil {
			return err
		}
		req.SetBasicAuth("blind", d.pass)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if !slices.Contains(ok, resp.StatusCode) {
			return fmt.Errorf("%s /%s: %s", method, path, resp.Status)
		}
		return nil
	}
	t0 := time.Now()
	// The folder itself, from the root down, as rclone makes it once.
	parts := strings.Split(dir, "/")
	for i := range parts {
		if err := call("MKCOL", strings.Join(parts[:i+1], "/")+"/", nil, nil, http.StatusCreated, http.StatusMethodNotAllowed); err != nil {
			return 0, 0, err
		}
	}
	var next atomic.Int64
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(rels) {
					return
				}
				body, err := os.ReadFile(filepath.Join(folder, filepath.FromSlash(rels[i])))
				if err == nil {
					// 423: another worker's MKCOL of the folder holds its
					// lock this moment; rclone takes it as made, too.
					err = call("MKCOL", dir+"/"+path.Dir(rels[i])+"/", nil, nil, http.StatusCreated, http.StatusMethodNotAllowed, http.StatusLocked)
				}
				if err == nil {
					err = call(http.MethodPut, dir+"/"+rels[i], body, nil, http.StatusCreated, http.StatusNoContent)
				}
				if err == nil {
					err = call("PROPFIND", dir+"/"+rels[i], nil, map[string]string{"Depth": "0"}, http.StatusMultiStatus)
				}
				if err != nil {
					errs <- err
					next.Store(int64(len(rels)))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, 0, err
	}
	answered = time.Since(t0)
	if err := call(http.MethodDelete, dir+"/"+rels[0], nil, nil, http.StatusNoContent); err != nil {
		return 0, 0, err
	}
	return answered, time.Since(t0), nil
}

// rcloneConfig writes an rclone configuration whose remote "bs" is d:
// without pacing (pacer_min_sleep, rclone 1.63 and later; older ones
// ignore it), which a server on loopback does not need.
func (d *webdavProc) rcloneConfig(ctx context.Context, rclone, path string) error {
	out, err := exec.CommandContext(ctx, rclone, "obscure", d.pass).Output()
	if err != nil {
		return fmt.Errorf("rclone obscure: %w", err)
	}
	text := fmt.Sprintf("[bs]\ntype = webdav\nurl = %s/\nvendor = other\nuser = blind\npass = %s\npacer_min_sleep = 0\n", d.url, strings.TrimSpace(string(out)))
	return os.WriteFile(path, []byte(text), 0o600)
}
