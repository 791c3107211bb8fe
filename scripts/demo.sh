#!/usr/bin/env bash
# The main job end to end, on an embedded default: a cats-and-dogs image dataset added as v1
# (1,800 images), pushed to a local-directory remote, tagged, grown by 1,000 images as v2, pushed
# again (only the new images travel), status and checkout after damage, gc, then a fresh clone
# of the Git repo pulls the data and checks out both versions; finally another project imports
# the dataset at v1, updates it to v2 (downloading only the new images), a teammate's clone of that
# project pulls the imported data, `diff --repo` tells what v2 added, and one image is fetched
# without any project.
# Runs in ./demo (recreated each time); needs only the virtualenv that `make demo` sets up.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$HERE/.venv/bin/python}"
FASTREG="${FASTREG:-$HERE/.venv/bin/fastreg}"
DEMO="${DEMO_DIR:-$HERE/demo}"
MEAN_KB="${DEMO_MEAN_KB:-20}"   # small images keep the demo quick; the bench uses 100 KB

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
rm -rf "$DEMO"
mkdir -p "$DEMO/registry" && cd "$DEMO/registry"
git init -q -b main
git config user.email demo@fastreg.invalid
git config user.name "fastreg demo"

step "fastreg init"
"$FASTREG" init
git add .fastreg && git commit -qm "Initialize fastreg"

step "a local-directory remote, recorded in the committed config"
"$FASTREG" remote add -d store "$DEMO/remote"
git add .fastreg/config && git commit -qm "Default remote"

step "v1: 1,800 images (train 500+500, validation 400+400)"
"$PY" "$HERE/bench/gen.py" images use-cases/cats-dogs --train 1000 --validation 800 --mean-kb "$MEAN_KB" --pictures
time "$FASTREG" add use-cases/cats-dogs
cat use-cases/cats-dogs.fastreg
git add use-cases/cats-dogs.fastreg use-cases/.gitignore
time "$FASTREG" push
git commit -qm "cats-dogs v1" && git tag cats-dogs-v1

step "v2: 1,000 more training images"
"$PY" "$HERE/bench/gen.py" images use-cases/cats-dogs --train 1000 --validation 0 --start 501 --mean-kb "$MEAN_KB" --pictures
"$FASTREG" status
time "$FASTREG" add use-cases/cats-dogs
"$FASTREG" status --remote
time "$FASTREG" push   # only the 1,000 new images travel
git add use-cases/cats-dogs.fastreg
git commit -qm "cats-dogs v2" && git tag cats-dogs-v2
git --no-pager diff cats-dogs-v1 cats-dogs-v2 -- use-cases/cats-dogs.fastreg

step "status with nothing changed"
time "$FASTREG" status

step "damage the workspace: delete 3 images, edit 1, then status and checkout"
rm use-cases/cats-dogs/data/train/cats/cat.0001.jpg use-cases/cats-dogs/data/train/dogs/dog.0002.jpg \
   use-cases/cats-dogs/data/validation/cats/cat.0003.jpg
echo "scribble" >> use-cases/cats-dogs/data/train/dogs/dog.0010.jpg
"$FASTREG" status
"$FASTREG" checkout || echo "(checkout refused: an edit that is not in the cache needs --force)"
"$FASTREG" checkout --force
"$FASTREG" status

step "back to v1 and forward to v2 (git checkout + fastreg checkout)"
git checkout -q cats-dogs-v1
"$FASTREG" checkout
find use-cases/cats-dogs -type f | wc -l
git checkout -q main
"$FASTREG" checkout
find use-cases/cats-dogs -type f | wc -l

step "gc --workspace drops the cache objects only v1 used"
"$FASTREG" gc --workspace
"$FASTREG" status

step "another machine: clone the Git repo and pull the data from the remote"
git clone -q "$DEMO/registry" "$DEMO/clone"
cd "$DEMO/clone"
time "$FASTREG" pull
"$FASTREG" status
diff -r "$DEMO/registry/use-cases/cats-dogs" "$DEMO/clone/use-cases/cats-dogs" && echo "clone is byte-identical"
git checkout -q cats-dogs-v1 && "$FASTREG" pull -q && find use-cases/cats-dogs -type f | wc -l
git checkout -q main && "$FASTREG" checkout -q

step "a consumer project imports the dataset at v1 (a package manager for data)"
export XDG_CACHE_HOME="$DEMO/user-cache"   # registry mirrors and the user-level cache, kept inside the demo
mkdir -p "$DEMO/consumer" && cd "$DEMO/consumer"
git init -q -b main
git config user.email demo@fastreg.invalid
git config user.name "fastreg demo"
"$FASTREG" init -q
time "$FASTREG" import "$DEMO/registry" use-cases/cats-dogs --rev cats-dogs-v1
cat cats-dogs.fastreg
find cats-dogs -type f | wc -l
git add cats-dogs.fastreg .gitignore .fastreg && git commit -qm "Import cats-dogs v1"

step "update the import to v2: only the 1,000 new images are downloaded"
time "$FASTREG" update cats-dogs.fastreg --rev cats-dogs-v2
find cats-dogs -type f | wc -l
"$FASTREG" update cats-dogs.fastreg   # pinned to a tag: nothing to do
diff -r "$DEMO/registry/use-cases/cats-dogs" cats-dogs && echo "consumer has exactly v2"

step "a teammate clones the consumer project and pulls: the import comes from the registry at its rev_lock"
git add cats-dogs.fastreg && git commit -qm "cats-dogs v2"
git clone -q "$DEMO/consumer" "$DEMO/teammate"
cd "$DEMO/teammate"
"$FASTREG" status
time "$FASTREG" pull   # no remote of the consumer's own: the registry's remote serves the import
diff -r "$DEMO/registry/use-cases/cats-dogs" cats-dogs && echo "teammate has exactly v2"
"$FASTREG" push        # imports are the registry's to push

step "what did v2 add over v1? (from the registry's trees, no data downloaded)"
time "$FASTREG" diff --repo "$DEMO/registry" cats-dogs-v1 cats-dogs-v2 | tail -n 3
"$FASTREG" diff --repo "$DEMO/registry" cats-dogs-v1 cats-dogs-v2 --json | "$PY" -c "
import json, sys
s = json.load(sys.stdin)['summary']
print('diff --json summary:', {k: v['files'] for k, v in s.items()})
"

step "one image without any project, and a look at the registry"
cd "$DEMO"
time "$FASTREG" get "$DEMO/registry" use-cases/cats-dogs/data/train/cats/cat.0001.jpg -o one-cat.jpg
cmp one-cat.jpg "$DEMO/registry/use-cases/cats-dogs/data/train/cats/cat.0001.jpg" && echo "one-cat.jpg is byte-identical"
"$FASTREG" list "$DEMO/registry" use-cases/cats-dogs/data --rev cats-dogs-v1
"$PY" -c "
import fastreg.api
with fastreg.api.open('use-cases/cats-dogs/data/train/dogs/dog.0001.jpg', repo='$DEMO/registry', rev='cats-dogs-v1') as f:
    print('fastreg.api.open read', len(f.read()), 'bytes of dog.0001.jpg at cats-dogs-v1')
"
echo
echo "demo finished: registry $DEMO/registry (remote $DEMO/remote), clone $DEMO/clone, consumer $DEMO/consumer," \
     "teammate $DEMO/teammate"
echo "look at it in a browser: $FASTREG ui $DEMO/registry --open"
