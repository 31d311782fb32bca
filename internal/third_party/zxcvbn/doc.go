// Package zxcvbn is github.com/trustelem/zxcvbn v1.0.1 (MIT, LICENSE.txt;
// a Go port of Dropbox's zxcvbn password strength estimator), copied with
// one change: its dictionaries are built on first use instead of at
// package init. Linked into blind from the module, they were built at the
// start of every command, about 120 ms and 12 MB each, although only
// signup, passwd and recovery check a password. Nothing else differs
// from upstream, whose last release this is.
package zxcvbn
