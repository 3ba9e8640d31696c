// Space Cloud's own JavaScript client (the space-api npm package) against
// walhook's queue API, for tests/integration/api_test.cpp.
//
//   node client.js URL PROJECT TOKEN
//
// Prints one JSON line: the client's answers ({status, data}) to a plain,
// a synchronous, a delayed and a dated queueEvent, in that order.
const { API } = require('space-api');

async function main() {
  const [url, project, token] = process.argv.slice(2);
  const api = new API(project, url);
  api.setToken(token);
  const plain = await api.queueEvent('ORDER_SHIPPED', { order: 7, total: 12.5 }).apply();
  const sync = await api.queueEvent('ASK', { q: 1 }).synchronous().apply();
  const delayed = await api.queueEvent('ORDER_SHIPPED', { order: 8 }).delay(1500).apply();
  const dated = await api
    .queueEvent('ORDER_SHIPPED', { order: 9 })
    .date(new Date(Date.now() + 2000))
    .apply();
  console.log(JSON.stringify([plain, sync, delayed, dated]));
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(String(e && e.stack ? e.stack : e));
    process.exit(1);
  },
);
