"""Shared helper (copied verbatim into each convert.py): split HTML documentation
pages into heading-delimited sections, then into <=MAX_WORDS-word chunks.
Standard library only."""
import re
from html.parser import HTMLParser

MAX_WORDS = 200
BLOCK = {"p", "pre", "li", "dt", "dd", "div", "tr", "table", "ul", "ol", "dl",
         "blockquote", "br", "section", "td", "th"}
HEAD = {"h1", "h2", "h3", "h4", "h5"}


class _Parser(HTMLParser):
    """Collects (level, heading, [paragraphs]) in document order.
    root_pred(tag, attrs) -> True marks the element whose content is kept
    (None = whole page). skip_pred(tag, attrs) -> True drops an element subtree."""

    def __init__(self, root_pred, skip_pred):
        super().__init__(convert_charrefs=True)
        self.root_pred, self.skip_pred = root_pred, skip_pred
        self.stack = []          # open tags: (tag, is_root, is_skip)
        self.in_root = 0 if root_pred else 1
        self.skip = 0
        self.sections = [[0, "", []]]
        self.buf = []
        self.head_buf = None

    def _flush(self):
        t = re.sub(r"\s+", " ", "".join(self.buf)).strip()
        if t:
            self.sections[-1][2].append(t)
        self.buf = []

    def handle_starttag(self, tag, attrs):
        if tag in ("br", "img", "meta", "link", "input", "hr"):
            if tag == "br":
                self.buf.append(" ")
            return
        a = dict(attrs)
        is_root = bool(self.root_pred and self.root_pred(tag, a))
        is_skip = tag in ("script", "style") or bool(self.skip_pred(tag, a))
        self.stack.append((tag, is_root, is_skip))
        if is_root:
            self.in_root += 1
        if is_skip:
            self.skip += 1
        if not self.in_root or self.skip:
            return
        if tag in HEAD:
            self._flush()
            self.head_buf = [int(tag[1])]
        elif tag in BLOCK and self.head_buf is None:
            self._flush()

    def handle_endtag(self, tag):
        # pop up to and including the matching tag (tolerant of bad nesting)
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                for t, r, s in self.stack[i:][::-1]:
                    if t in HEAD and self.head_buf is not None and self.in_root and not self.skip:
                        lvl = self.head_buf[0]
                        txt = re.sub(r"\s+", " ", "".join(self.head_buf[1:])).strip()
                        self.sections.append([lvl, txt, []])
                        self.head_buf = None
                    elif t in BLOCK and self.in_root and not self.skip and self.head_buf is None:
                        self._flush()
                    if r:
                        self.in_root -= 1
                    if s:
                        self.skip -= 1
                del self.stack[i:]
                return

    def handle_data(self, data):
        if not self.in_root or self.skip:
            return
        if self.head_buf is not None:
            self.head_buf.append(data)
        else:
            self.buf.append(data)


def parse_sections(html, root_pred=None, skip_pred=lambda t, a: False):
    p = _Parser(root_pred, skip_pred)
    p.feed(html)
    p.close()
    p._flush()
    return [(l, h, paras) for l, h, paras in p.sections]


def chunk_paragraphs(paras, max_words=MAX_WORDS):
    """Greedy packing of paragraphs into chunks of <= max_words words;
    a paragraph longer than max_words is split on word boundaries."""
    chunks, cur = [], []
    for para in paras:
        words = para.split()
        while len(words) > max_words:
            if cur:
                chunks.append(" ".join(cur)); cur = []
            chunks.append(" ".join(words[:max_words])); words = words[max_words:]
        if len(cur) + len(words) > max_words and cur:
            chunks.append(" ".join(cur)); cur = []
        cur.extend(words)
    if cur:
        chunks.append(" ".join(cur))
    return chunks


def strip_number(h):
    """'8.1. What is X?' -> 'What is X?'; also drops Sphinx pilcrow."""
    h = h.replace("\u00b6", "").strip()
    return re.sub(r"^(Chapter\s+)?[0-9A-Z]?[0-9.]*\.?\s+(?=\S)", "", h) if re.match(r"^(Chapter\s+)?[0-9A-Z]?[0-9]+(\.[0-9]+)*\.?\s", h) else h


# ---------------------------------------------------------------- dataset build
import glob, json, os, hashlib


def build_dataset(pages, out_dir, max_rel_chunks=3):
    """pages: list of (doc_prefix, path, is_faq, root_pred, skip_pred).
    Passages = <=200-word chunks of every heading-delimited section; title =
    the page's h1 (never the section heading, so an FAQ question never leaks
    into its own answer passage). Queries = FAQ section headings ending in '?';
    relevant = the chunks of that section and of its sub-sections (score 1);
    queries with more than max_rel_chunks relevant chunks (or none) are dropped."""
    corpus, queries, qrels, seen_q = [], [], [], set()
    for prefix, path, is_faq, root, skip in pages:
        secs = parse_sections(open(path, encoding="utf-8").read(), root, skip)
        page_title = next((strip_number(h) for l, h, p in secs if l == 1 and h), "")
        sec_chunk_ids = []
        for j, (lvl, head, paras) in enumerate(secs):
            ids = []
            for k, ch in enumerate(chunk_paragraphs(paras)):
                did = f"{prefix}-{j}-{k}"
                corpus.append({"id": did, "title": page_title, "text": ch})
                ids.append(did)
            sec_chunk_ids.append(ids)
        if not is_faq:
            continue
        for j, (lvl, head, paras) in enumerate(secs):
            q = strip_number(head)
            if lvl < 2 or not q.endswith("?"):
                continue
            rel = list(sec_chunk_ids[j])
            for j2 in range(j + 1, len(secs)):
                if secs[j2][0] <= lvl:
                    break
                rel += sec_chunk_ids[j2]
            if not rel or len(rel) > max_rel_chunks or q.lower() in seen_q:
                continue
            seen_q.add(q.lower())
            qid = "q%04d" % (len(queries) + 1)
            queries.append({"id": qid, "text": q})
            qrels += [(qid, d, 1) for d in rel]
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "corpus.jsonl"), "w") as f:
        for d in corpus:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    with open(os.path.join(out_dir, "queries.jsonl"), "w") as f:
        for q in queries:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    with open(os.path.join(out_dir, "qrels.tsv"), "w") as f:
        f.write("query_id\tdoc_id\tscore\n")
        for q, d, s in qrels:
            f.write(f"{q}\t{d}\t{s}\n")
    print(f"{out_dir}: {len(corpus)} passages, {len(queries)} queries, {len(qrels)} qrels")
    for fn in ("corpus.jsonl", "queries.jsonl", "qrels.tsv"):
        h = hashlib.sha256(open(os.path.join(out_dir, fn), "rb").read()).hexdigest()
        print(f"  sha256 {fn} {h}")


def fetch_debs(pkgs, work):
    """apt-get download + dpkg-deb -x (needs only Debian's archive)."""
    import subprocess
    os.makedirs(work, exist_ok=True)
    for p in pkgs:
        subprocess.run(["apt-get", "download", p], cwd=work, check=True)
    for deb in glob.glob(os.path.join(work, "*.deb")):
        subprocess.run(["dpkg-deb", "-x", deb, os.path.join(work, "root")], check=True)
    return os.path.join(work, "root")


# ---------------------------------------------------------------- this dataset
# python-faq-kb: queries = question headings of the Python FAQ (python3.11-doc,
# html/faq/*.html); distractors = other pages of the same documentation package.
import subprocess, tempfile

PKG = "python3.11-doc"
HTML = "usr/share/doc/python3.11/html"
# distractor pages: whole directories, plus a fixed list of library/ pages chosen
# because they cover topics the FAQ answers touch (hard distractors).
DISTRACT_DIRS = ["howto", "tutorial", "using"]
DISTRACT_LIBRARY = [
    "os", "os.path", "sys", "subprocess", "threading", "multiprocessing", "queue",
    "re", "random", "math", "functions", "stdtypes", "exceptions", "constants",
    "pickle", "copy", "io", "tempfile", "shutil", "glob", "fnmatch", "pathlib",
    "socket", "select", "signal", "time", "datetime", "timeit", "profile", "pdb",
    "unittest", "doctest", "tkinter", "ctypes", "importlib", "modules", "site",
    "sys_path_init", "venv", "zipimport", "functools", "itertools", "collections",
    "operator", "weakref", "gc", "dis", "inspect", "string", "textwrap", "struct",
    "array", "smtplib", "email.message", "urllib.request", "curses", "termios",
    "tty", "fcntl", "shelve", "dbm", "sqlite3", "csv", "logging", "argparse",
    "getopt", "hashlib", "secrets", "locale", "codecs", "unicodedata", "decimal",
    "fractions", "numbers", "abc", "dataclasses", "enum", "typing", "contextlib",
]


def _is_root(t, a):
    return t == "div" and a.get("role") == "main"


def _skip(t, a):
    cls = (a.get("class") or "").split()
    return (t == "nav"                                   # local "Contents" TOC
            or (t == "a" and "headerlink" in cls)         # pilcrow permalinks
            or (t == "div" and ("toctree-wrapper" in cls or "sphinxsidebar" in cls
                                or "related" in cls or "footer" in cls)))


def write_licence(html_dir, out_dir):
    """Copy the PSF License Agreement and the Zero-Clause BSD licence (for code
    in the docs) verbatim from the package's license.html (PSF licence clause 2
    requires the agreement and copyright notice to be retained)."""
    import html as _h
    s = open(os.path.join(html_dir, "license.html"), encoding="utf-8").read()
    parts = []
    for sid in ("psf-license-agreement-for-python-release",
                "zero-clause-bsd-license-for-code-in-the-python-release-documentation"):
        m = re.search(r'<section id="%s">.*?<h3>(.*?)<a class="headerlink".*?<pre[^>]*>(.*?)</pre>' % sid, s, re.S)
        parts.append(_h.unescape(m.group(1)) + "\n\n" + _h.unescape(re.sub(r"<[^>]+>", "", m.group(2))).strip() + "\n")
    with open(os.path.join(out_dir, "LICENSE-PSF.txt"), "w", encoding="utf-8") as f:
        f.write("Source: python3.11-doc, usr/share/doc/python3.11/html/license.html (verbatim).\n"
                "Python documentation: Copyright \u00a9 2001-2023 Python Software Foundation; All Rights Reserved.\n\n"
                + "\n\n".join(parts))


def check(out_dir):
    """Sanity checks: queries with >=1 relevant passage; query text found
    verbatim (case-insensitive) in its own relevant passages / anywhere."""
    corpus, nwords = {}, 0
    for line in open(os.path.join(out_dir, "corpus.jsonl"), encoding="utf-8"):
        d = json.loads(line); corpus[d["id"]] = (d["title"] + " " + d["text"]).lower()
        nwords = max(nwords, len(d["text"].split()))
    qs = [json.loads(l) for l in open(os.path.join(out_dir, "queries.jsonl"), encoding="utf-8")]
    rel = {}
    for line in list(open(os.path.join(out_dir, "qrels.tsv"), encoding="utf-8"))[1:]:
        q, d, s = line.rstrip("\n").split("\t")
        assert d in corpus, d
        rel.setdefault(q, []).append(d)
    with_rel = sum(1 for q in qs if rel.get(q["id"]))
    leak_own = [q["id"] for q in qs if any(q["text"].lower() in corpus[d] for d in rel.get(q["id"], []))]
    leak_any = [q["id"] for q in qs if any(q["text"].lower() in t for t in corpus.values())]
    print(f"  check: {with_rel} of {len(qs)} queries have >=1 relevant passage; "
          f"query verbatim in own relevant passages: {len(leak_own)} of {len(qs)}; "
          f"verbatim anywhere in corpus: {len(leak_any)} {leak_any}")
    print(f"  max words per passage text: {nwords}")


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", help="dir where the .deb is already extracted (has usr/share/...)")
    ap.add_argument("--work", help="download/extract dir (default: a new temp dir)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "python-faq-kb"))
    a = ap.parse_args()
    tmp = None
    if a.root:
        root = a.root
    else:
        work = a.work or tempfile.mkdtemp(prefix="python-faq-kb-src.")
        tmp = None if a.work else work
        root = fetch_debs([PKG], work)
        for deb in glob.glob(os.path.join(work, "*.deb")):
            v = subprocess.run(["dpkg-deb", "-f", deb, "Package", "Version"],
                               capture_output=True, text=True).stdout.split()
            print("source package:", os.path.basename(deb), " ".join(v))
    html = os.path.join(root, HTML)
    pages = []
    for p in sorted(glob.glob(os.path.join(html, "faq/*.html"))):
        if os.path.basename(p) == "index.html":
            continue
        pages.append(("faq." + os.path.basename(p)[:-5], p, True, _is_root, _skip))
    for d in DISTRACT_DIRS:
        for p in sorted(glob.glob(os.path.join(html, d, "*.html"))):
            if os.path.basename(p) == "index.html":
                continue
            pages.append((d + "." + os.path.basename(p)[:-5], p, False, _is_root, _skip))
    for name in DISTRACT_LIBRARY:
        p = os.path.join(html, "library", name + ".html")
        if os.path.exists(p):
            pages.append(("library." + name, p, False, _is_root, _skip))
        else:
            print("  (missing library page, skipped:", name + ")")
    build_dataset(pages, a.out)
    write_licence(html, a.out)
    check(a.out)
    if tmp:
        import shutil
        shutil.rmtree(tmp)
