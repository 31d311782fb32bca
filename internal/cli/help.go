package cli

import (
	"fmt"
	"io"
	"strings"
)

// Short returns the first sentence of a summary, for a list of commands.
// Summaries are wrapped by hand for the command's own help, so their line
// breaks are not sentence ends: they are unfolded first, then the text is
// cut after the first full stop that ends a sentence (one followed by a
// space or by the end), never at a line break.
func Short(summary string) string {
	s := strings.Join(strings.Fields(summary), " ")
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i+1]
	}
	return s
}

// Wrap breaks text into lines of at most width characters at spaces (a
// word longer than width gets a line of its own).
func Wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		switch {
		case line == "":
			line = w
		case len(line)+1+len(w) <= width:
			line += " " + w
		default:
			lines = append(lines, line)
			line = w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

// PrintCommands lists commands, one per entry: the name and argument
// synopsis, then the first sentence of the summary, wrapped to fit 80
// columns with its continuation lines indented under the first. A
// synopsis too long for the column puts the sentence on the next line.
func PrintCommands(w io.Writer, cmds []*Command) {
	const total, maxCol = 80, 36
	col := 0
	for _, c := range cmds {
		if n := len(synopsis(c)) + 4; n > col && n <= maxCol {
			col = n
		}
	}
	for _, c := range cmds {
		syn := "  " + synopsis(c)
		lines := Wrap(Short(c.Summary), total-col)
		if len(syn)+2 > col {
			fmt.Fprintf(w, "%s\n", syn)
			syn = ""
		}
		for i, l := range lines {
			if i > 0 {
				syn = ""
			}
			fmt.Fprintf(w, "%-*s%s\n", col, syn, l)
		}
	}
}

func synopsis(c *Command) string { return strings.TrimSpace(c.Name + " " + c.Usage) }
