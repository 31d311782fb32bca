package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"strings"
)

// Chart geometry, in pixels. Text is the 5×7 font at scale 2: a cell of
// 12 × 18.
const (
	chartScale   = 2
	cellW        = 6 * chartScale
	rowH         = 26
	labelChars   = 46
	valueChars   = 34
	chartPad     = 12
	barLeft      = chartPad + labelChars*cellW + 10
	barWidth     = 520
	valueLeft    = barLeft + barWidth + 14
	chartWidth   = valueLeft + valueChars*cellW + chartPad
	headerHeight = 64
)

var (
	colBG     = color.RGBA{255, 255, 255, 255}
	colText   = color.RGBA{20, 20, 20, 255}
	colGrid   = color.RGBA{225, 225, 225, 255}
	colTarget = color.RGBA{40, 40, 40, 255}
	colPass   = color.RGBA{46, 160, 67, 255}
	colMiss   = color.RGBA{207, 34, 46, 255}
	colMuted  = color.RGBA{140, 140, 140, 255}
)

// drawChart draws every row that has a target as a horizontal bar of how
// far it got towards the target (1 is the target, drawn as a vertical
// line; ratio targets and figure targets alike, "≤" targets inverted so
// that longer is always better), green when met and red when missed.
// Rows that could not run are listed with their verdict.
func drawChart(r *Report) ([]byte, error) {
	var rows []Row
	for _, row := range r.Rows {
		if row.Target != nil {
			rows = append(rows, row)
		}
	}
	h := headerHeight + max(1, len(rows))*rowH + 2*chartPad + 20
	img := image.NewRGBA(image.Rect(0, 0, chartWidth, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{colBG}, image.Point{}, draw.Src)

	title := fmt.Sprintf("blindbench %s: achieved / target (1 = target met)", r.Started.UTC().Format("2006-01-02 15:04 UTC"))
	drawText(img, chartPad, chartPad, title, colText)
	summary := fmt.Sprintf("%d pass, %d miss, %d info, %d skip, %d fail",
		r.count(verdictPass), r.count(verdictMiss), r.count(verdictInfo), r.count(verdictSkip), r.count(verdictFail))
	drawText(img, chartPad, chartPad+22, summary, colMuted)

	// The scale runs to at least 2× the target and at most 4×; longer
	// bars are cut and marked.
	top := 2.0
	for _, row := range rows {
		if row.Verdict == verdictPass || row.Verdict == verdictMiss {
			if s := row.Target.score(&row); !math.IsInf(s, 0) && !math.IsNaN(s) {
				top = max(top, math.Min(4, math.Ceil(s)))
			}
		}
	}
	x := func(v float64) int { return barLeft + int(math.Round(math.Min(v, top)/top*barWidth)) }
	y0 := headerHeight
	y1 := headerHeight + max(1, len(rows))*rowH
	for t := 0.0; t <= top+1e-9; t += 0.5 {
		c := colGrid
		if t == 1 {
			c = colTarget
		}
		fillRect(img, x(t), y0-4, 1+boolInt(t == 1), y1-y0+4, c)
		drawText(img, x(t)-cellW/2*len(trimFloat(t)), y1+4, trimFloat(t), colMuted)
	}
	for i, row := range rows {
		y := y0 + i*rowH
		drawText(img, chartPad, y+4, clip(row.Name, labelChars), colText)
		switch row.Verdict {
		case verdictPass, verdictMiss:
			s := row.Target.score(&row)
			c := colMiss
			if row.Verdict == verdictPass {
				c = colPass
			}
			w := x(s) - barLeft
			if math.IsInf(s, 1) || math.IsNaN(s) {
				w = barWidth
			}
			fillRect(img, barLeft, y+3, max(w, 2), rowH-8, c)
			if s > top {
				// Cut: two white notches at the end.
				fillRect(img, barLeft+barWidth-10, y+3, 2, rowH-8, colBG)
				fillRect(img, barLeft+barWidth-5, y+3, 2, rowH-8, colBG)
			}
			drawText(img, valueLeft, y+4, clip(valueText(row), valueChars), colText)
		default:
			drawText(img, barLeft+4, y+4, row.Verdict, colMuted)
			drawText(img, valueLeft, y+4, clip(row.Note, valueChars), colMuted)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encode chart: %w", err)
	}
	return buf.Bytes(), nil
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

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func fillRect(img *image.RGBA, x, y, w, h int, c color.Color) {
	draw.Draw(img, image.Rect(x, y, x+w, y+h).Intersect(img.Bounds()), &image.Uniform{c}, image.Point{}, draw.Src)
}

// drawText draws s with its top left corner at (x, y).
func drawText(img *image.RGBA, x, y int, s string, c color.RGBA) {
	for _, r := range strings.ToUpper(s) {
		if r == '…' {
			r = '.'
		}
		g := glyph(r)
		for gy, line := range g {
			for gx, p := range line {
				if p == '#' {
					fillRect(img, x+gx*chartScale, y+gy*chartScale, chartScale, chartScale, c)
				}
			}
		}
		x += cellW
	}
}
