#!/usr/bin/env python3
"""benches/cg-self.py: self instructions per object (and the top functions) of
callgrind dumps, for benches/instructions.sh.

    python3 benches/cg-self.py OUT [TOP] DUMP...   # TSV: object, instructions

Adds up the self cost (instructions executed in a function's own code, not in
what it calls) of every function in the given callgrind output files (the
"events: Ir" format written with --dump-instr=no), by the object (executable or
shared library) the function lives in. Writes "object<TAB>Ir" lines, largest
first, to OUT, and the TOP (default 0) functions with the largest self cost to
OUT.functions. callgrind_annotate's per-function lists are inclusive for
threads' entry points, so this reads the format directly: a cost line right
after a "calls=" line is the callee's inclusive cost and is skipped; every
other cost line belongs to the current function. Instructions inside the
kernel are not counted by valgrind at all.
"""
import collections
import re
import sys


def parse(path, by_obj, by_fn):
    names = {"ob": {}, "fn": {}, "fl": {}}
    ob = fn = "?"
    skip_next = False
    pos_fields = 1
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) > pos_fields:
                    ir = int(parts[pos_fields])
                    by_obj[ob] += ir
                    by_fn[(ob, fn)] += ir
                continue
            m = re.match(r"^(c?ob|c?fn|c?f[lie]|fi|fe)=(?:\((\d+)\))?\s*(.*)$", line)
            if m:
                key, ident, name = m.groups()
                table = "ob" if key.endswith("ob") else "fn" if key.endswith("fn") else "fl"
                if ident is not None:
                    if name:
                        names[table][ident] = name
                    else:
                        name = names[table].get(ident, "?")
                if key == "ob":
                    ob = name
                elif key == "fn":
                    fn = name
                continue
            if line.startswith("calls="):
                skip_next = True
            elif line.startswith("positions:"):
                pos_fields = len(line.split()) - 1


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out = sys.argv[1]
    args = sys.argv[2:]
    top = 0
    if args and args[0].isdigit():
        top = int(args.pop(0))
    by_obj = collections.Counter()
    by_fn = collections.Counter()
    for p in args:
        parse(p, by_obj, by_fn)
    with open(out, "w", encoding="utf-8") as f:
        for ob, ir in by_obj.most_common():
            f.write(f"{ob}\t{ir}\n")
    if top:
        with open(out + ".functions", "w", encoding="utf-8") as f:
            for (ob, fn), ir in by_fn.most_common(top):
                f.write(f"{ir}\t{ob.rsplit('/', 1)[-1]}\t{fn}\n")


if __name__ == "__main__":
    main()
