// Drives the DynamoDB server with the AWS SDK v3 (client and document client) as our
// Node.js wrapper calls it (region and keys "None"), and prints what it observed as one
// JSON line. Usage: node dynamodb.js ENDPOINT TABLE.

const {
  DynamoDBClient,
  CreateTableCommand,
  DescribeTableCommand,
  DeleteTableCommand,
} = require('@aws-sdk/client-dynamodb');
const {
  DynamoDBDocumentClient,
  PutCommand,
  GetCommand,
  UpdateCommand,
  QueryCommand,
  DeleteCommand,
} = require('@aws-sdk/lib-dynamodb');

const [endpoint, TableName] = process.argv.slice(2);

async function code(call) {
  try {
    await call();
    return null;
  } catch (e) {
    return e.name;
  }
}

(async () => {
  const raw = new DynamoDBClient({
    endpoint: `http://${endpoint}`,
    region: 'None',
    credentials: { accessKeyId: 'None', secretAccessKey: 'None' },
  });
  const doc = DynamoDBDocumentClient.from(raw);
  const out = {};
  const create = () =>
    raw.send(
      new CreateTableCommand({
        TableName,
        AttributeDefinitions: [
          { AttributeName: 'cart_id', AttributeType: 'S' },
          { AttributeName: 'product_id', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'cart_id', KeyType: 'HASH' },
          { AttributeName: 'product_id', KeyType: 'RANGE' },
        ],
        BillingMode: 'PAY_PER_REQUEST',
      })
    );
  await create();
  out.second_create = await code(create);
  out.status = (await raw.send(new DescribeTableCommand({ TableName }))).Table.TableStatus;
  for (const [product_id, price] of [['p3', 3], ['p1', 42], ['p2', 1.5]]) {
    await doc.send(new PutCommand({ TableName, Item: { cart_id: 'c1', product_id, price, quantity: 2 } }));
  }
  const Key = { cart_id: 'c1', product_id: 'p1' };
  out.get = (await doc.send(new GetCommand({ TableName, Key }))).Item;
  await doc.send(
    new UpdateCommand({
      TableName,
      Key,
      UpdateExpression: 'SET #status_name = :status_value, #quantity_name = :quantity_value',
      ExpressionAttributeNames: { '#status_name': 'status', '#quantity_name': 'quantity' },
      ExpressionAttributeValues: { ':status_value': 'paid', ':quantity_value': 5 },
    })
  );
  out.updated = (await doc.send(new GetCommand({ TableName, Key }))).Item;
  const query = async () =>
    (
      await doc.send(
        new QueryCommand({
          TableName,
          KeyConditionExpression: '#k = :v',
          ExpressionAttributeNames: { '#k': 'cart_id' },
          ExpressionAttributeValues: { ':v': 'c1' },
        })
      )
    ).Items.map((i) => [i.product_id, i.price]);
  out.query = await query();
  await doc.send(new DeleteCommand({ TableName, Key: { cart_id: 'c1', product_id: 'p3' } }));
  out.query_after_delete = await query();
  await raw.send(new DeleteTableCommand({ TableName }));
  out.describe_dropped = await code(() => raw.send(new DescribeTableCommand({ TableName })));
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
