#!/usr/bin/env node
// `npm run test:asan`: builds the addon and the native tests with
// AddressSanitizer + UndefinedBehaviorSanitizer (-DNEUROPLASTIC_SANITIZE=ON)
// into build-asan/, runs the native tests (with LeakSanitizer), then runs the
// mocha API tests against that addon: node is started with the ASan runtime
// preloaded (LD_PRELOAD) and NEUROPLASTIC_ADDON_PATH pointing lib/native.ts at
// build-asan/Release/neuroplastic.node. UBSan stops at the first finding
// (-fno-sanitize-recover), ASan at the first memory error; either fails the run.
//
// LeakSanitizer runs for node too (V8 registers its heap as an LSan root
// region, so native state still owned by live JS objects is not reported), but
// node itself leaks a little in some paths (child-process handles: ~160 small
// records over the suite), so leak reports go to files (log_path), do not
// change exit codes, and only records with a frame in neuroplastic.node fail
// the run. Memory errors still abort (abort_on_error). The CUDA tests run too,
// over the CUDA emulator built in the same way (native/cuda/emulator): its
// native tests, and test/65 with the emulated addon. --no-leaks turns LSan
// off. scripts/long-run.ts --lsan checks 2,000 training steps with structural
// events the same way (see docs/HARDENING.md).
//
// Options:
//   --no-build       use the existing build-asan/ as is
//   --native-only    only the native tests
//   --api-only       only the mocha tests
//   --out DIR        build directory (default build-asan)
//   --no-leaks       no LeakSanitizer for the mocha run
//   -- FILES...      mocha test files to run instead of the default list
// Test files skipped (they pack, install or build the package, which takes
// minutes and tests no native code the others do not): SKIPPED below.
'use strict';
const { spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const SKIPPED = ['60.package.test.ts', '70.package.pack.test.ts'];

function parse(argv) {
  const o = { build: true, native: true, api: true, out: 'build-asan', files: null, leaks: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--no-build') o.build = false;
    else if (a === '--native-only') o.api = false;
    else if (a === '--api-only') o.native = false;
    else if (a === '--out') o.out = argv[++i];
    else if (a === '--no-leaks') o.leaks = false;
    else if (a === '--') {
      o.files = argv.slice(i + 1);
      break;
    } else {
      console.error(`test-asan: unknown argument ${a}`);
      process.exit(2);
    }
  }
  return o;
}

function runtimeLibrary(name) {
  for (const cc of [process.env.CXX, 'g++', 'c++', 'clang++'].filter(Boolean)) {
    try {
      const p = execFileSync(cc, [`-print-file-name=${name}`], { encoding: 'utf8' }).trim();
      if (p && path.isAbsolute(p) && fs.existsSync(p)) return p;
    } catch {
      /* try the next compiler */
    }
  }
  return null;
}

function step(title, cmd, args, env) {
  console.log(`\n== ${title}\n$ ${cmd} ${args.join(' ')}`);
  const t0 = Date.now();
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit', env: { ...process.env, ...env } });
  const seconds = ((Date.now() - t0) / 1000).toFixed(1);
  if (r.error) {
    console.error(`test-asan: ${title}: could not run ${cmd}: ${r.error.message}`);
    return { ok: false, seconds };
  }
  const ok = r.status === 0;
  console.log(`== ${title}: ${ok ? 'ok' : r.signal ? `killed by ${r.signal}` : `exit ${r.status}`} (${seconds} s)`);
  return { ok, seconds };
}

function main() {
  const o = parse(process.argv.slice(2));
  const outDir = path.resolve(ROOT, o.out);
  const results = [];
  const started = Date.now();
  if (o.build) {
    const cmakeJs = path.join(ROOT, 'node_modules', '.bin', 'cmake-js');
    const r = step('build (ASan + UBSan)', cmakeJs, [
      'compile', '--out', outDir, '--CDNEUROPLASTIC_SANITIZE=ON', '--CDNEUROPLASTIC_TESTS=ON', '-l', 'warn',
    ]);
    results.push(['build', r]);
    if (!r.ok) return finish(results, started);
  }
  const common = {
    UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
    // The pool's threads are fine under ASan; keep the count small on shared machines.
    NEUROPLASTIC_THREADS: process.env.NEUROPLASTIC_THREADS || '2',
  };
  if (o.native) {
    const exe = path.join(outDir, 'native', 'neuroplastic_native_tests');
    results.push(['native tests (ASan + UBSan + LSan)', step('native tests', exe, [], { ...common, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=1:strict_string_checks=1' })]);
    // The CUDA tests over the CUDA emulator: the device model's host code and the kernels
    // (undefined behaviour in their index arithmetic included) under the sanitizers too.
    const emulated = path.join(outDir, 'native', 'neuroplastic_cuda_emulated_tests');
    if (fs.existsSync(emulated)) {
      results.push(['CUDA tests over the emulator (ASan + UBSan + LSan)', step('CUDA tests over the emulator', emulated, [], { ...common, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=1:strict_string_checks=1' })]);
    }
  }
  if (o.api) {
    const asan = runtimeLibrary('libasan.so');
    if (!asan) {
      console.error('test-asan: libasan.so not found (g++ -print-file-name=libasan.so); install the compiler\'s sanitizer runtime');
      results.push(['api tests', { ok: false, seconds: '0' }]);
      return finish(results, started);
    }
    const addon = path.join(outDir, 'Release', 'neuroplastic.node');
    // test/65 (the GPU tests of the API) runs over the emulated CUDA addon of this build.
    const emulatedAddon = path.join(outDir, 'Release', 'cuda-emulator', 'neuroplastic_cuda.node');
    let files = o.files;
    if (!files) {
      files = fs
        .readdirSync(path.join(ROOT, 'test'))
        .filter((f) => f.endsWith('.test.ts') && !SKIPPED.includes(f))
        .sort()
        .map((f) => path.join('test', f));
      console.log(`\nskipped: ${SKIPPED.join(', ')} (package/pack tests: no native code beyond the others)`);
    }
    const mocha = path.join(ROOT, 'node_modules', 'mocha', 'bin', 'mocha.js');
    const logDir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'np-asan-'));
    const r = step('api tests', process.execPath, [mocha, '--no-config', '--node-option', 'import=tsx', '--timeout', '900000', '--reporter', 'dot', ...files], {
      ...common,
      LD_PRELOAD: [asan, process.env.LD_PRELOAD].filter(Boolean).join(':'),
      // abort_on_error=0: LeakSanitizer's exit-time check in a node child (a CLI test) now and then
      // fails to stop the process's threads and reports a fatal error; with abort_on_error=1 that
      // killed the child with SIGABRT after it had done its work, failing a CLI test with no output.
      // A real ASan error still ends the process and is caught below in the log files.
      ASAN_OPTIONS: `detect_leaks=${o.leaks ? 1 : 0}:exitcode=0:abort_on_error=0:allow_user_segv_handler=1:log_path=${path.join(logDir, 'asan')}`,
      NEUROPLASTIC_ADDON_PATH: addon,
      ...(fs.existsSync(emulatedAddon) ? { NEUROPLASTIC_CUDA_ADDON_PATH: emulatedAddon } : {}),
    });
    const reports = fs.readdirSync(logDir).map((f) => fs.readFileSync(path.join(logDir, f), 'utf8'));
    fs.rmSync(logDir, { recursive: true, force: true });
    const text = reports.join('\n');
    const records = text.split(/\n(?=(?:Direct|Indirect) leak of )/).filter((b) => /^(Direct|Indirect) leak of/.test(b.trim()));
    const ours = records.filter((b) => /neuroplastic(_cuda)?\.node/.test(b.split('\n\n')[0]));
    const errors = reports.filter((t) => /ERROR: AddressSanitizer/.test(t) && !/ERROR: LeakSanitizer/.test(t));
    for (const e of errors) console.log(e.slice(0, 8000));
    // Reported, not failed: the leak check of these processes did not run (see abort_on_error above).
    const lsanFatal = reports.filter((t) => /has encountered a fatal error|CHECK failed|Tracer caught signal/.test(t));
    if (lsanFatal.length) {
      console.log(`A sanitizer could not finish its exit-time check in ${lsanFatal.length} process(es); the first report:`);
      console.log(lsanFatal[0].slice(0, 2000));
    }
    for (const b of ours.slice(0, 10)) console.log(b.split('\n\n')[0]);
    if (o.leaks) {
      console.log(`LeakSanitizer: ${records.length} leak records in node and its children, ${ours.length} with a frame in neuroplastic.node`);
    }
    results.push(['api tests (mocha, ASan + UBSan)', r]);
    results.push(['ASan reports in log files', { ok: errors.length === 0, seconds: '0' }]);
    if (o.leaks) results.push(['leaks with a neuroplastic.node frame', { ok: ours.length === 0, seconds: '0' }]);
  }
  return finish(results, started);
}

function finish(results, started) {
  console.log('\ntest-asan summary:');
  for (const [name, r] of results) console.log(`  ${r.ok ? 'ok  ' : 'FAIL'} ${name} (${r.seconds} s)`);
  console.log(`  total ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.exit(results.every(([, r]) => r.ok) ? 0 : 1);
}

main();
