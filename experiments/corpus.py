#!/usr/bin/env python3
"""corpus.py - the research corpus: fetch the sources listed in
experiments/corpus_sources.py (Debian 12 packages with apt-get download,
PyPI releases with pip download), unpack them under a cache directory, and
write one text file per document under OUT/DOMAIN/, in a fixed order, until
each domain holds CAP bytes. experiments/corpus.sh drives it; docs/DATA.md
describes the rules and the sources' licenses.

    python3 experiments/corpus.py fetch CACHE
    python3 experiments/corpus.py build CACHE OUT [--cap BYTES] [--doc-cap BYTES] [--jobs N]
    python3 experiments/corpus.py licenses CACHE   (each source's license lines)

Rules (the same on every run and machine, given the same package versions):
- Candidates: every file a source's patterns match. Within a domain they
  are taken in the order of sha256("domain/package/path"): a fixed shuffle,
  so a capped domain is a sample of all its sources, not the first
  directories of the first package.
- A file becomes text by its kind: man (groff to plain text, the page's
  header and footer and the translators' credits left out), html (tags
  dropped, paragraphs kept, navigation lines "[ ... ]" dropped), text (as it
  is), code (its leading license comment left out; generated files, files
  over 200 KB and files with lines over 1000 bytes skipped), fortune (the
  entries of a fortune file, a blank line between them). Text that is not
  UTF-8 is skipped; line ends become \\n, trailing spaces and runs of blank
  lines are squeezed.
- A document under 200 bytes is skipped; an exact duplicate (same text up to
  whitespace) of one taken before is skipped; in the german and french
  domains a document whose common English words outnumber the language's
  own (an untranslated page) is skipped.
- A document over DOC_CAP bytes is cut into parts at paragraph (else line)
  boundaries, each part a document of its own.
- The domain is full once it holds CAP bytes (the last document may pass
  it by less than DOC_CAP).
Written: OUT/DOMAIN/000001.txt ..., OUT/manifest.tsv (each document's
source), OUT/sources.tsv (documents and bytes per source).
"""
import glob
import gzip
import hashlib
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from fnmatch import fnmatch
from html.parser import HTMLParser

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus_sources import DOMAINS, INNER_TARBALLS, SOURCES  # noqa: E402

MIN_DOC = 200
# tarfile's safe extraction where this Python has it (3.11.4 and later)
TAR_SAFE = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def die(msg):
    sys.exit(f"corpus: {msg}")


def run(cmd, cwd=None):
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode:
        die(f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}")
    return r.stdout


# ------------------------------------------------------------------ fetch

def deb_file(cache, name, version):
    """The cached .deb of NAME at exactly VERSION, or None."""
    for f in sorted(glob.glob(os.path.join(cache, "deb", f"{name}_*.deb"))):
        v = run(["dpkg-deb", "-f", f, "Version"]).strip()
        if v == version:
            return f
    return None


def pypi_file(cache, name, version):
    d = os.path.join(cache, "pypi")
    for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        base = f.lower().replace("_", "-")
        if base.startswith(f"{name.lower()}-{version}") and (f.endswith(".tar.gz") or f.endswith(".whl")):
            return os.path.join(d, f)
    return None


def root_of(cache, origin, name):
    return os.path.join(cache, "root", ("pypi-" if origin == "pypi" else "") + name)


def fetch_deb(cache, name, version):
    f = deb_file(cache, name, version)
    if not f:
        os.makedirs(os.path.join(cache, "deb"), exist_ok=True)
        out = subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=os.path.join(cache, "deb"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        f = deb_file(cache, name, version)
        if not f:
            die(f"apt-get download {name}={version} gave no package (is this Debian 12 with main in "
                f"its sources, and does the archive still hold that version? apt-cache policy {name}):\n"
                + out.stdout[-1000:])
    root = root_of(cache, "deb", name)
    stamp = os.path.join(root, ".unpacked")
    if os.path.exists(stamp) and open(stamp).read() == version:
        return
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    # Only the files some source takes, the copyright file and an inner
    # tarball: the images and other languages stay in the .deb.
    keep = [p for s in SOURCES if s[1] == "deb" and s[2] == name for p in s[5]]
    keep += ["usr/share/doc/*/copyright"] + ([INNER_TARBALLS[name][0]] if name in INNER_TARBALLS else [])
    deb = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", f], stdout=subprocess.PIPE)
    with tarfile.open(fileobj=deb.stdout, mode="r|") as t:
        for m in t:
            rel = os.path.normpath(m.name)
            if m.isfile() and any(fnmatch(rel, p) for p in keep):
                t.extract(m, root, **TAR_SAFE)
    if deb.wait():
        die(f"dpkg-deb --fsys-tarfile {f} failed")
    if name in INNER_TARBALLS:
        pat, members = INNER_TARBALLS[name]
        tars = sorted(glob.glob(os.path.join(root, pat)))
        if len(tars) != 1:
            die(f"{name}: expected one {pat}, found {len(tars)}")
        with tarfile.open(tars[0]) as t:
            for m in t:
                if m.isfile() and any(fnmatch(m.name, p) for p in members) and m.size <= 200_000:
                    t.extract(m, os.path.join(root, "src"), **TAR_SAFE)
        os.remove(tars[0])
    with open(stamp, "w") as s:
        s.write(version)


def fetch_pypi(cache, name, version):
    f = pypi_file(cache, name, version)
    if not f:
        d = os.path.join(cache, "pypi")
        os.makedirs(d, exist_ok=True)
        # The sdist (sources and docs) where pip can read its metadata
        # without building, else the wheel (the installed code only).
        base = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", d, f"{name}=={version}"]
        r = subprocess.run(base + ["--no-binary", ":all:", "--no-build-isolation"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode:
            run(base + ["--only-binary", ":all:"])
        f = pypi_file(cache, name, version)
        if not f:
            die(f"pip download {name}=={version} gave no file")
    root = root_of(cache, "pypi", name)
    stamp = os.path.join(root, ".unpacked")
    if os.path.exists(stamp) and open(stamp).read() == os.path.basename(f):
        return
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    if f.endswith(".whl"):
        with zipfile.ZipFile(f) as z:
            z.extractall(root)
    else:
        with tarfile.open(f) as t:
            t.extractall(root, **TAR_SAFE)
    with open(stamp, "w") as s:
        s.write(os.path.basename(f))


def fetch(cache):
    done = set()
    for _, origin, name, version, *_ in SOURCES:
        if (origin, name) in done:
            continue
        done.add((origin, name))
        print(f"  {origin} {name} {version}", flush=True)
        (fetch_deb if origin == "deb" else fetch_pypi)(cache, name, version)


# ----------------------------------------------------------- documents

def squeeze(text):
    """\\n line ends, no trailing spaces, at most one blank line in a row,
    no blank lines at either end."""
    out, blank = [], False
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = line.rstrip()
        if not line:
            blank = bool(out)
            continue
        if blank:
            out.append("")
        blank = False
        out.append(line)
    return "\n".join(out) + "\n" if out else ""


def read_utf8(path):
    with open(path, "rb") as f:
        raw = f.read()
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def man_text(path, domain):
    """groff to plain text, as tools/demo.sh renders the demo's man pages."""
    with open(path, "rb") as f:
        src = gzip.decompress(f.read())
    if len(src) < 100 and src.startswith(b".so "):
        return None
    r = subprocess.run(["groff", "-k", "-t", "-Tutf8", "-mandoc", "-rLL=2000n", "-rHY=0", "-P-cbou"],
                       input=src, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    text = r.stdout.decode("utf-8", "replace")
    lines = [re.sub(r"  +", " ", line.lstrip(" ")) for line in text.split("\n")]
    nz = [i for i, line in enumerate(lines) if line.strip()]
    if len(nz) < 3:
        return None
    body = lines[nz[0] + 1:nz[-1]]  # not the header and footer lines
    credits = {"german": "ÜBERSETZUNG", "french": "TRADUCTION"}.get(domain)
    if credits and credits in body:
        body = body[:body.index(credits)]
    return "\n".join(body)


class _Html(HTMLParser):
    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "dt", "dd", "table",
             "ul", "ol", "section", "article", "blockquote", "title", "hr", "td", "th", "caption"}
    SKIP = {"script", "style", "head", "nav"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out, self.skip, self.pre = [], 0, 0

    def handle_starttag(self, tag, attrs):
        self.skip += tag in self.SKIP
        self.pre += tag == "pre"
        if tag in self.BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skip:
            self.skip -= 1
        if tag == "pre" and self.pre:
            self.pre -= 1
        if tag in self.BLOCK:
            self.out.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.out.append(data if self.pre else re.sub(r"\s+", " ", data))


def html_text(path):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        src = raw.decode("utf-8")
    except UnicodeDecodeError:
        m = re.search(rb'charset=["\']?([A-Za-z0-9_-]+)', raw[:2000])
        try:
            src = raw.decode(m.group(1).decode() if m else "latin-1")
        except (LookupError, UnicodeDecodeError):
            return None
    p = _Html()
    p.feed(src)
    p.close()
    lines = [line.strip() for line in "".join(p.out).split("\n")]
    return "\n".join(line for line in lines if not (line.startswith("[") and line.endswith("]") and len(line) < 120))


GENERATED = re.compile(r"(?i)do not edit|auto-?generated|automatically generated|code generated|generated by")
LICENSE = re.compile(r"(?i)copyright|licen[cs]e|spdx")


def strip_license(text):
    """The file without its leading comment block when that block is a
    license notice (names a copyright or license); the blank lines after it
    too."""
    lines = text.split("\n")
    keep = 1 if lines[0].startswith("#!") else 0  # a script's interpreter line stays
    i = keep
    while i < len(lines) and not lines[i].strip():
        i += 1
    j = i
    if j < len(lines) and lines[j].lstrip().startswith("/*"):
        while j < len(lines) and "*/" not in lines[j]:
            j += 1
        j += 1
    else:
        for mark in ("//", "#"):
            while j < len(lines) and lines[j].lstrip().startswith(mark):
                j += 1
            if j > i:
                break
    if j > i and LICENSE.search("\n".join(lines[i:j])):
        while j < len(lines) and not lines[j].strip():
            j += 1
        return "\n".join(lines[:keep] + lines[j:])
    return text


def code_text(path):
    if os.path.getsize(path) > 200_000:
        return None
    text = read_utf8(path)
    if text is None or GENERATED.search("\n".join(text.split("\n", 10)[:10])):
        return None
    if max((len(line) for line in text.split("\n")), default=0) > 1000:
        return None
    return strip_license(text)


def fortune_text(path):
    text = read_utf8(path)
    if text is None:
        return None
    entries = re.split(r"\n%\n", "\n" + text.replace("\r\n", "\n") + "\n")
    return "\n\n".join(e.strip("\n") for e in entries if e.strip())


STOP = {
    "english": set("the and of to is in that it for with this are be as on you can not from by or".split()),
    "german": set("der die und das ist nicht mit den zu ein eine sie es von für auf wird werden sich dem im auch".split()),
    "french": set("le la les et des est une un du pour dans que qui pas sur avec par sont au ce".split()),
}


def looks_like(text, lang):
    words = re.findall(r"[a-zäöüßéèêàâçîôûù]+", text[:20000].lower())
    own = sum(w in STOP[lang] for w in words)
    return own > sum(w in STOP["english"] for w in words)


def make_doc(item):
    """(domain, kind, path) -> the document's text, or None."""
    domain, kind, path = item
    if os.path.islink(path) or not os.path.isfile(path):
        return None
    if kind == "man":
        text = man_text(path, domain)
    elif kind == "html":
        text = html_text(path)
    elif kind == "code":
        text = code_text(path)
    elif kind == "fortune":
        text = fortune_text(path)
    else:
        text = read_utf8(path)
    if not text:
        return None
    text = squeeze(text)
    if len(text.encode()) < MIN_DOC:
        return None
    if domain in ("german", "french") and not looks_like(text, domain):
        return None
    return text


def parts(text, cap):
    """The text cut into pieces of at most cap bytes, at blank lines where
    it can, else at line ends (a longer line is cut where it passes cap)."""
    if len(text.encode()) <= cap:
        return [text]
    units = []  # pieces that concatenate to the text: paragraphs, else lines
    paras = text.split("\n\n")
    for i, para in enumerate(paras):
        para += "\n\n" if i + 1 < len(paras) else ""
        if len(para.encode()) <= cap:
            units.append(para)
            continue
        for line in para.splitlines(keepends=True):
            while len(line.encode()) > cap:
                head = line.encode()[:cap].decode("utf-8", "ignore")
                units.append(head + "\n")
                line = line[len(head):]
            units.append(line)
    out, cur, size = [], [], 0
    for u in units:
        n = len(u.encode())
        if cur and size + n > cap:
            out.append("".join(cur))
            cur, size = [], 0
        cur.append(u)
        size += n
    if cur:
        out.append("".join(cur))
    return [squeeze(p) for p in out if len(p.encode()) >= MIN_DOC]


def candidates(cache, domain):
    items = []
    for dom, origin, name, version, kind, pats, excl in SOURCES:
        if dom != domain:
            continue
        root = root_of(cache, origin, name)
        if not os.path.isdir(root):
            die(f"{root} is missing: run `corpus.py fetch {cache}` first")
        n = 0
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fn in sorted(filenames):
                path = os.path.join(dirpath, fn)
                rel = os.path.relpath(path, root)
                if any(fnmatch(rel, p) for p in pats) and not any(fnmatch(rel, p) for p in excl):
                    key = hashlib.sha256(f"{domain}/{name}/{rel}".encode()).hexdigest()
                    items.append((key, origin, name, version, kind, rel, path))
                    n += 1
        if n == 0:
            die(f"{domain}: no file of {name} matches {pats}")
    items.sort()
    return items


def build(cache, out, cap, doc_cap, jobs):
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    manifest = open(os.path.join(out, "manifest.tsv"), "w")
    manifest.write("domain\tdocument\tbytes\torigin\tpackage\tversion\tpath\tpart\n")
    per_source = {}
    seen = set()
    for domain in DOMAINS:
        items = candidates(cache, domain)
        os.makedirs(os.path.join(out, domain))
        total = n = 0
        # A pool per domain: leaving the with-block stops the workers still
        # busy with files past the cap.
        with multiprocessing.Pool(jobs) as pool:
            texts = pool.imap(make_doc, [(domain, it[4], it[6]) for it in items], chunksize=8)
            for it, text in zip(items, texts):
                if total >= cap:
                    break
                if text is None:
                    continue
                h = hashlib.sha256(" ".join(text.split()).encode()).digest()
                if h in seen:
                    continue
                seen.add(h)
                _, origin, name, version, _, rel, _ = it
                for k, p in enumerate(parts(text, doc_cap)):
                    n += 1
                    size = len(p.encode())
                    doc = f"{n:06d}.txt"
                    with open(os.path.join(out, domain, doc), "w", encoding="utf-8") as f:
                        f.write(p)
                    total += size
                    manifest.write(f"{domain}\t{doc}\t{size}\t{origin}\t{name}\t{version}\t{rel}\t{k}\n")
                    s = per_source.setdefault((domain, origin, name, version), [0, 0])
                    s[0] += 1
                    s[1] += size
        print(f"{domain:8s} {n:7d} documents {total:11,d} bytes"
              f"{'' if total >= cap else ' (all there is: under the cap)'}", flush=True)
    manifest.close()
    with open(os.path.join(out, "sources.tsv"), "w") as f:
        f.write("domain\torigin\tpackage\tversion\tdocuments\tbytes\n")
        for (d, o, name, v), (docs, size) in sorted(per_source.items(), key=lambda kv: (DOMAINS.index(kv[0][0]), -kv[1][1])):
            f.write(f"{d}\t{o}\t{name}\t{v}\t{docs}\t{size}\n")


def licenses(cache):
    """Each source's license statements, for docs/DATA.md: the License
    fields of a Debian machine-readable copyright file (or its first lines),
    the License field and classifiers of a PyPI release."""
    done = set()
    for _, origin, name, version, *_ in SOURCES:
        if (origin, name) in done:
            continue
        done.add((origin, name))
        root = root_of(cache, origin, name)
        if origin == "deb":
            f = os.path.join(root, "usr/share/doc", name, "copyright")
            if not os.path.exists(f):
                f = (glob.glob(os.path.join(root, "usr/share/doc/*/copyright")) or [None])[0]
            text = open(f, encoding="utf-8", errors="replace").read() if f else ""
            lic = sorted({m.strip() for m in re.findall(r"^License:\s*(.+)$", text, re.M)})
            print(f"{name} {version}: " + ("; ".join(lic) if lic else " | ".join(text.split("\n")[:6])))
        else:
            meta = glob.glob(os.path.join(root, "*/PKG-INFO")) + glob.glob(os.path.join(root, "*.dist-info/METADATA"))
            text = open(meta[0], encoding="utf-8", errors="replace").read() if meta else ""
            lic = re.findall(r"^(?:License(?:-Expression)?: .+|Classifier: License :: .+)$", text, re.M)
            print(f"pypi {name} {version}: " + "; ".join(lic))


def main():
    args = sys.argv[1:]
    if len(args) < 2 or args[0] not in ("fetch", "build", "licenses"):
        die(__doc__.split("\n\n")[1])
    cmd, cache = args[0], args[1]
    if cmd == "fetch":
        fetch(cache)
    elif cmd == "licenses":
        licenses(cache)
    else:
        if len(args) < 3:
            die("build CACHE OUT [--cap BYTES] [--doc-cap BYTES] [--jobs N]")
        opts = {"--cap": 32_000_000, "--doc-cap": 32_000, "--jobs": os.cpu_count() or 2}
        rest = args[3:]
        while rest:
            if rest[0] not in opts or len(rest) < 2:
                die(f"unknown option {rest[0]}")
            opts[rest[0]] = int(rest[1])
            rest = rest[2:]
        build(cache, args[2], opts["--cap"], opts["--doc-cap"], opts["--jobs"])


if __name__ == "__main__":
    main()
