// The install story a user sees: pack, install the tarball with no compiler on
// PATH, load, train and run the CLI (scripts/test-pack.js does the work).
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as path from 'path';

describe('package: npm pack + install without a compiler', () => {
  it('installs from the tarball, loads from CommonJS and ESM, trains, and runs the CLI', function () {
    this.timeout(600000);
    const r = spawnSync(process.execPath, [path.resolve(__dirname, '../scripts/test-pack.js')], { encoding: 'utf8' });
    if (r.status !== 0) console.error(r.stdout, r.stderr);
    expect(r.status).to.equal(0);
    expect(r.stdout).to.include('test-pack: ok');
    expect(r.stdout).to.match(/CommonJS: trained, held-out accuracy 0\.[89]/);
  });
});
