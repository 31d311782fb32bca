package main

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Chart geometry, in pixels at chartDPI.
const (
	chartDPI    = 96
	chartWidth  = 1400
	scoreRowH   = 20  // per row of the score panel
	scoreExtraH = 130 // title, summary and axis of the score panel
	peerH       = 440 // the peer panel, when there are peer figures
	labelChars  = 46
	valueChars  = 40
)

var (
	colTarget = color.RGBA{40, 40, 40, 255}
	colPass   = color.RGBA{46, 160, 67, 255}
	colMiss   = color.RGBA{207, 34, 46, 255}
	colGrid   = color.RGBA{225, 225, 225, 255}
	// The peer panel's servers, in the order of peerServers.
	peerColors  = []color.RGBA{{90, 90, 90, 255}, {31, 119, 180, 255}, {255, 127, 14, 255}}
	peerServers = []string{"nginx", embedded.name, pgStore.name}
)

func px(n int) vg.Length { return vg.Length(n) * vg.Inch / chartDPI }

// drawChart draws every row that has a target as a horizontal bar of how
// far it got towards the target (1 is the target, drawn as a vertical
// line; ratio targets and figure targets alike, "≤" targets inverted so
// that longer is always better), green when met and red when missed;
// rows that could not run are listed with their verdict. Below, when the
// peer row measured anything, its requests per second against
// connections for nginx and blindstored on each store.
func drawChart(r *Report) ([]byte, error) {
	var rows []Row
	for _, row := range r.Rows {
		if row.Target != nil {
			rows = append(rows, row)
		}
	}
	score, err := scorePlot(r, rows)
	if err != nil {
		return nil, err
	}
	peer, err := peerPlot(r)
	if err != nil {
		return nil, err
	}
	scoreH := scoreExtraH + max(1, len(rows))*scoreRowH
	h := scoreH
	if peer != nil {
		h += peerH
	}
	img := vgimg.NewWith(vgimg.UseWH(px(chartWidth), px(h)), vgimg.UseDPI(chartDPI))
	dc := draw.New(img)
	// White first: the canvas starts transparent.
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	pad := px(12)
	if peer != nil {
		peer.Draw(draw.Crop(dc, pad, -pad, pad, -px(scoreH)))
		dc = draw.Crop(dc, 0, 0, px(peerH), 0)
	}
	score.Draw(draw.Crop(dc, pad, -pad, pad, -pad))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("encode chart: %w", err)
	}
	return buf.Bytes(), nil
}

// scorePlot is the panel of targets: one bar per row, top to bottom in
// the report's order, its label the row's name and value.
func scorePlot(r *Report, rows []Row) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("blindbench %s: achieved / target (1 = target met)\n%d pass, %d miss, %d info, %d skip, %d fail",
		r.Started.UTC().Format("2006-01-02 15:04 UTC"),
		r.count(verdictPass), r.count(verdictMiss), r.count(verdictInfo), r.count(verdictSkip), r.count(verdictFail))
	p.Title.TextStyle.Font.Size = vg.Points(11)
	p.X.Label.Text = "achieved / target"

	// The scale runs to at least 2× the target and at most 4×; longer
	// bars are cut and say so.
	top := 2.0
	for _, row := range rows {
		if s, ok := barScore(row); ok && !math.IsInf(s, 0) {
			top = max(top, math.Min(4, math.Ceil(s)))
		}
	}
	n := max(1, len(rows))
	pass, miss := make(plotter.Values, n), make(plotter.Values, n)
	labels := make([]string, n)
	labels[0] = "no row with a target ran"
	for i, row := range rows {
		y := n - 1 - i // the first row on top
		text := row.Verdict + " " + row.Note
		if s, ok := barScore(row); ok {
			text = valueText(row)
			v := math.Min(s, top)
			if math.IsInf(s, 1) || s > top {
				text += " (cut)"
			}
			if row.Verdict == verdictPass {
				pass[y] = v
			} else {
				miss[y] = v
			}
		}
		labels[y] = clip(row.Name, labelChars) + "   " + clip(text, valueChars)
	}
	grid := plotter.NewGrid()
	grid.Vertical.Color = colGrid
	grid.Horizontal.Width = 0
	p.Add(grid)
	for _, b := range []struct {
		vs plotter.Values
		c  color.Color
	}{{pass, colPass}, {miss, colMiss}} {
		bars, err := plotter.NewBarChart(b.vs, px(scoreRowH-6))
		if err != nil {
			return nil, fmt.Errorf("chart bars: %w", err)
		}
		bars.Horizontal = true
		bars.Color = b.c
		bars.LineStyle.Width = 0
		p.Add(bars)
	}
	target, err := plotter.NewLine(plotter.XYs{{X: 1, Y: -0.5}, {X: 1, Y: float64(n) - 0.5}})
	if err != nil {
		return nil, fmt.Errorf("chart target line: %w", err)
	}
	target.Color = colTarget
	target.Width = vg.Points(1.5)
	p.Add(target)
	p.NominalY(labels...)
	p.Y.Tick.Label.Font.Size = vg.Points(8)
	p.X.Min, p.X.Max = 0, top
	p.Y.Min, p.Y.Max = -0.5, float64(n)-0.5
	var ticks []plot.Tick
	for t := 0.0; t <= top+1e-9; t += 0.5 {
		ticks = append(ticks, plot.Tick{Value: t, Label: trimFloat(t)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	return p, nil
}

// barScore is how far a measured row got towards its target, for its bar.
func barScore(row Row) (float64, bool) {
	if row.Verdict != verdictPass && row.Verdict != verdictMiss {
		return 0, false
	}
	s := row.Target.score(&row)
	if math.IsNaN(s) {
		return 0, false
	}
	return s, true
}

// peerPlot is the peer row as requests per second against connections,
// one line per server, or nil when the row measured nothing.
func peerPlot(r *Report) (*plot.Plot, error) {
	points := map[string]plotter.XYs{}
	var levels []float64
	for _, row := range r.Rows {
		if row.Group != "peer" || (row.Verdict != verdictPass && row.Verdict != verdictMiss && row.Verdict != verdictInfo) {
			continue
		}
		conns := row.Extra["connections"]
		if conns <= 0 {
			continue
		}
		for _, s := range peerServers {
			if row.Name == fmt.Sprintf("peer GET %s c=%d", s, int(conns)) {
				points[s] = append(points[s], plotter.XY{X: conns, Y: row.Figure})
			}
		}
		if !slices.Contains(levels, conns) {
			levels = append(levels, conns)
		}
	}
	if len(points) == 0 {
		return nil, nil
	}
	slices.Sort(levels)
	p := plot.New()
	p.Title.Text = "peer: block GET, requests per second against connections (wrk)"
	p.Title.TextStyle.Font.Size = vg.Points(11)
	p.X.Label.Text = "connections"
	p.Y.Label.Text = "req/s"
	p.X.Scale = plot.LogScale{}
	var ticks []plot.Tick
	for _, l := range levels {
		ticks = append(ticks, plot.Tick{Value: l, Label: strconv.Itoa(int(l))})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Min = 0
	p.Legend.Top, p.Legend.Left = true, true
	grid := plotter.NewGrid()
	grid.Vertical.Color, grid.Horizontal.Color = colGrid, colGrid
	p.Add(grid)
	for i, s := range peerServers {
		xys := points[s]
		if len(xys) == 0 {
			continue
		}
		slices.SortFunc(xys, func(a, b plotter.XY) int { return int(a.X - b.X) })
		line, dots, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, fmt.Errorf("chart peer line: %w", err)
		}
		line.Color, dots.Color = peerColors[i], peerColors[i]
		line.Width = vg.Points(2)
		dots.Shape = draw.CircleGlyph{}
		p.Add(line, dots)
		name := s
		if s != "nginx" {
			name = "blindstored, " + s + " store"
		}
		p.Legend.Add(name, line, dots)
	}
	return p, nil
}

func valueText(row Row) string {
	if row.Target.On == "ratio" {
		return fmt.Sprintf("%.2f× (%s) %s", row.Ratio, row.Target, row.Verdict)
	}
	return fmt.Sprintf("%s %s (%s) %s", formatFigure(row.Figure), row.Unit, row.Target, row.Verdict)
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
