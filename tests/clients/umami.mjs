// Sends what tests/integration/test_dropin.py asks through the real @umami/node, in order,
// and prints each answer (status and JSON body) as one JSON array.
// Usage: node umami.mjs '{"hostUrl": ..., "websiteId": ..., "sends": [{"track": ...} | {"identify": ...}]}'
import { Umami } from '@umami/node';

const { hostUrl, websiteId, sends } = JSON.parse(process.argv[2]);
const umami = new Umami({ hostUrl, websiteId });
const answers = [];
for (const send of sends) {
  const response = send.identify
    ? await umami.identify(send.identify)
    : send.name
      ? await umami.track(send.name, send.data)
      : await umami.track(send.track);
  answers.push({ status: response.status, body: await response.json() });
}
console.log(JSON.stringify(answers));
