package main

import (
	"flag"
	"fmt"
	"io"
	"sort"

	"github.com/blindstore/blindstore/internal/cli"
	"github.com/blindstore/blindstore/wire"
)

// globalFlags returns the flags taken before the command name: the ones
// every command takes, and --version.
func globalFlags(g *globals) (*flag.FlagSet, *bool) {
	fs := cli.NewFlagSet("blind")
	g.register(fs)
	v := fs.Bool("version", false, "print the version and exit")
	return fs, v
}

func printVersion(a *app, w io.Writer) int {
	v := cli.Version(version)
	if a.g.json {
		fmt.Fprintf(w, "{\"version\":%q}\n", v)
	} else {
		fmt.Fprintf(w, "blind %s\n", v)
	}
	return wire.ExitOK
}

// commandList returns the commands sorted by name.
func commandList(cmds map[string]*command) []*cli.Command {
	list := make([]*cli.Command, 0, len(cmds))
	for _, c := range cmds {
		list = append(list, &c.Command)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return list
}

// metaCommands are the commands about blind itself: version, help and
// completion. help and completion complete from the table they are
// added to, so they get it once it is whole.
func metaCommands() (cmds []*command, finish func(map[string]*command)) {
	version := newCommand("version", "", "Print the version of blind.", nil)
	version.run = func(a *app) error {
		if len(version.Args) > 0 {
			return cli.Usagef("unexpected arguments")
		}
		printVersion(a, a.stdout)
		return nil
	}
	// 'blind help' is answered before the table is consulted (main.go);
	// the entry is here for the command list and completion.
	help := newCommand("help", "[COMMAND]", "Show the help of blind, or of one command.", nil)
	help.run = func(a *app) error {
		printMainUsage(a.stdout)
		return nil
	}
	comp := newCommand("completion", "bash|zsh|fish", "Print a script that makes the shell complete blind's commands and flags.\n"+
		"bash: source <(blind completion bash), e.g. from ~/.bashrc; zsh: source\n"+
		"<(blind completion zsh) after compinit, or save it as _blind in $fpath; fish:\n"+
		"blind completion fish > ~/.config/fish/completions/blind.fish.", nil)
	comp.Complete = cli.Shells
	var table map[string]*command
	comp.run = func(a *app) error {
		if len(comp.Args) != 1 {
			return cli.Usagef("want one shell: bash, zsh or fish")
		}
		gfs, _ := globalFlags(&globals{})
		return cli.Completion(a.stdout, comp.Args[0], "blind", gfs, commandList(table))
	}
	return []*command{version, help, comp}, func(m map[string]*command) {
		table = m
		for n := range m {
			help.Complete = append(help.Complete, n)
		}
		sort.Strings(help.Complete)
	}
}
