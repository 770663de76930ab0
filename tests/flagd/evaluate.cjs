// Evaluates flagd flag configurations with the OpenFeature flagd in-process evaluator, the way
// an application's flagd provider does. Used by tests/flagd.rs.
//
// Usage: node evaluate.cjs FLAG_KEY COUNT < configs.json
// configs.json is a JSON array of flagd flag configurations. Prints a JSON array with, for each
// configuration, the indices i in [0, COUNT) whose targetingKey `user-<i>` gets `true`.
const { FlagdCore } = require('@openfeature/flagd-core');

const [flagKey, count] = [process.argv[2], Number(process.argv[3])];
const configs = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const admitted = configs.map((config) => {
  const core = new FlagdCore();
  core.setConfigurations(JSON.stringify(config));
  const keys = [];
  for (let i = 0; i < count; i++) {
    const r = core.resolveBooleanEvaluation(flagKey, false, { targetingKey: `user-${i}` });
    if (r.errorCode) throw new Error(`${flagKey} for user-${i}: ${r.errorCode} ${r.errorMessage}`);
    if (r.value === true) keys.push(i);
  }
  return keys;
});
process.stdout.write(JSON.stringify(admitted));
