#!/usr/bin/python3
"""The folders are layers and depend on one another one way only:

    harness/ (the tools) -> tuner/ -> runtime/ -> variants/ -> include/ (attn.h)

Checked here on the sources and on the built objects:
  * includes: every `#include "..."` of a C file or header in those folders names a header of
    its own layer or of one below (a generated header counts as the folder that makes it:
    attn_config.h the top-level configuration, below everything; attn_build_info.h runtime/);
  * no include cycle between modules (a module is x.c with x.h) anywhere in them;
  * no file of them is over MAX_LINES lines unless it says why ("Over 900 lines, on purpose:",
    the kernels whose paths share one ISA's inline code);
  * with nm and the layers' libraries: no object calls a function defined in a layer above
    its own, and the files of harness/ call one another without a cycle (the CLI helpers at the
    bottom, one file per subcommand over them, main.c over all).
Before the real tree, the checks run on made-up files with an upward include, an include
cycle, a long file, an upward call and a call cycle, and must find each (so this test can
fail).

Usage: test_layering.py SOURCE_ROOT [NM FOLDER LIBRARY_OR_OBJECT_DIR ...]"""

import os
import subprocess
import sys
import tempfile

LAYERS = ['include', 'variants', 'runtime', 'tuner', 'harness']  # bottom first
RANK = {folder: rank for rank, folder in enumerate(LAYERS)}
GENERATED = {'attn_config.h': 'include', 'attn_build_info.h': 'runtime'}
# Folders whose files must also call one another without a cycle (see the docstring).
ACYCLIC_CALLS = ['harness']
ORDER = ' -> '.join(f + '/' for f in reversed(LAYERS))
MAX_LINES = 900
LONG_REASON = 'Over 900 lines, on purpose:'


def sources(root):
    for folder in LAYERS:
        for name in sorted(os.listdir(os.path.join(root, folder))):
            if name.endswith(('.c', '.h', '.cc')):
                yield folder, name


def includes(path):
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            words = line.replace('#', ' # ', 1).split()
            if len(words) >= 3 and words[0] == '#' and words[1] == 'include' and \
                    words[2].startswith('"'):
                yield number, words[2].strip('"')


def resolve(root, folder, name):
    """The folder holding the header `name` included from `folder`, as the compiler would find
    it: beside the file first, then by a path from the root, then in any layer."""
    if os.path.exists(os.path.join(root, folder, name)):
        return folder, os.path.basename(name)
    if '/' in name:
        head, tail = name.split('/', 1)
        if head in RANK:
            return head, tail
    if name in GENERATED:
        return GENERATED[name], name
    for layer in LAYERS:
        if os.path.exists(os.path.join(root, layer, name)):
            return layer, name
    return None, name


def module(folder, name):
    return folder + '/' + name.rsplit('.', 1)[0]


def cycles(graph):
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def check_includes(root):
    errors, graph = [], {}
    for folder, name in sources(root):
        for line, included in includes(os.path.join(root, folder, name)):
            where, header = resolve(root, folder, included)
            if where is None:
                errors.append(f'{folder}/{name}:{line}: #include "{included}": no such header in '
                              f'{", ".join(LAYERS)} (nor a generated one this test knows)')
                continue
            if RANK[where] > RANK[folder]:
                errors.append(f'{folder}/{name}:{line}: #include "{included}" ({where}/{header}): '
                              f'{folder}/ may not include {where}/, a layer above it ({ORDER})')
            a, b = module(folder, name), module(where, header)
            if a != b:
                graph.setdefault(a, set()).add(b)
    for component in cycles(graph):
        errors.append('include cycle between ' + ', '.join(component))
    return errors


def check_sizes(root):
    """The size rule covers the tests too (tests/, not a layer; tests/fuzz/ included)."""
    errors = []
    test_files = [(folder, name) for folder in ('tests', 'tests/fuzz')
                  if os.path.isdir(os.path.join(root, folder))
                  for name in sorted(os.listdir(os.path.join(root, folder)))
                  if name.endswith(('.c', '.h'))]
    for folder, name in list(sources(root)) + test_files:
        with open(os.path.join(root, folder, name), encoding='utf-8') as f:
            text = f.read()
        lines = text.count('\n')
        if lines > MAX_LINES and LONG_REASON not in text:
            errors.append(f'{folder}/{name}: {lines} lines, over {MAX_LINES}: split it by '
                          f'concern, or say why not in a comment starting "{LONG_REASON}"')
    return errors


def objects(path):
    """Object files of a static library (meson's are thin archives) or a folder of them."""
    if os.path.isdir(path):
        return [os.path.join(path, n) for n in sorted(os.listdir(path)) if n.endswith('.o')]
    return [path]


def symbols(nm, path):
    """{object name: (defined, undefined)} for each object of an archive or object file."""
    out = subprocess.run([nm, '-A', path], capture_output=True, text=True, check=True).stdout
    table = {}
    for line in out.splitlines():
        head, _, rest = line.rpartition(':')
        words = rest.split()
        obj = os.path.basename(head.split(':')[-1])  # "lib.a:dir/x.c.o" or "dir/x.c.o"
        name = obj[:-2] if obj.endswith('.o') else obj
        defined, undefined = table.setdefault(name, (set(), set()))
        if len(words) == 3 and words[1] in 'TDBRVWG':
            defined.add(words[2])
        elif len(words) == 2 and words[0] == 'U':
            undefined.add(words[1])
    return table


def read_objects(nm, libraries):
    """libraries: [(folder, path)] -> {'folder/x.c': (defined, undefined)}."""
    files = {}
    for folder, path in libraries:
        for obj in objects(path):
            for name, syms in symbols(nm, obj).items():
                # A program of the top-level meson.build names its objects folder_file.c.o.
                name = name[len(folder) + 1:] if name.startswith(folder + '_') else name
                files[folder + '/' + name] = syms
    return files


def check_calls(files):
    """Upward calls between layers; call cycles between the files of ACYCLIC_CALLS."""
    owner = {}
    for f, (defined, _) in files.items():
        for s in defined:
            owner.setdefault(s, f)
    errors, graph = [], {}
    for f, (_, undefined) in sorted(files.items()):
        folder = f.split('/')[0]
        for s in sorted(undefined):
            g = owner.get(s)
            if g is None or g == f:
                continue
            if RANK[g.split('/')[0]] > RANK[folder]:
                errors.append(f'{f} calls {s} of {g}: {folder}/ may not call a layer above it '
                              f'({ORDER})')
            if folder in ACYCLIC_CALLS and g.split('/')[0] == folder:
                graph.setdefault(f, set()).add(g)
    for component in cycles(graph):
        errors.append('call cycle between ' + ', '.join(component) + ' (each calls the next; '
                      'move what they share into a file below them)')
    return errors


def self_test():
    """A made-up tree with one fault of each kind: each check must report it."""
    with tempfile.TemporaryDirectory() as root:
        for layer in LAYERS:
            os.mkdir(os.path.join(root, layer))
        tree = {
            'runtime/core.c': '#include "core.h"\n#include "cli.h"\n',  # upward
            'runtime/core.h': '',
            'harness/cli.h': '',
            'tuner/a.h': '#include "b.h"\n',  # a.h -> b.h -> a.h
            'tuner/b.h': '#include "a.h"\n',
            'harness/long.c': '\n' * (MAX_LINES + 1),  # no reason given
        }
        for path, text in tree.items():
            with open(os.path.join(root, path), 'w', encoding='utf-8') as f:
                f.write(text)
        found = check_includes(root)
        expect = ['runtime/core.c:2: #include "cli.h" (harness/cli.h): runtime/ may not include '
                  'harness/', 'include cycle between tuner/a, tuner/b']
        for e in expect:
            if not any(x.startswith(e) for x in found):
                sys.exit(f'self-test: the include check missed "{e}"; it reported {found}')
        if not any(x.startswith('harness/long.c: 901 lines') for x in check_sizes(root)):
            sys.exit('self-test: the size check missed harness/long.c')
    # Objects as nm shows them: one.c and two.c call each other, peak.c calls the tuner.
    calls = check_calls({'harness/one.c': ({'one'}, {'two'}), 'harness/two.c': ({'two'}, {'one'}),
                         'runtime/peak.c': ({'peak'}, {'tune'}), 'tuner/tune.c': ({'tune'}, set())})
    for e in ('call cycle between harness/one.c, harness/two.c',
              'runtime/peak.c calls tune of tuner/tune.c: runtime/ may not call'):
        if not any(x.startswith(e) for x in calls):
            sys.exit(f'self-test: the call check missed "{e}"; it reported {calls}')


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    nm = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
    pairs = sys.argv[3:]
    if len(pairs) % 2 or any(f not in RANK for f in pairs[::2]):
        sys.exit(__doc__)
    libraries = list(zip(pairs[::2], pairs[1::2]))
    self_test()
    errors = check_includes(root) + check_sizes(root)
    if nm and libraries:
        errors += check_calls(read_objects(nm, libraries))
    for e in errors:
        print('FAIL:', e)
    checked = 'sizes, includes' + (' and calls' if nm and libraries else ' (no nm: calls not checked)')
    print(f'layering: {len(errors)} problems; {checked} of {ORDER}')
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
