// sebs-local's NoSQL module for functions: SeBS's `nosql` API over the DynamoDB API.
//
// Benchmarks do `nosql.nosql.get_instance()` and call `insert`, `get`, `update`, `query`
// and `delete` (all async), as with SeBS's own module. The endpoint comes from
// NOSQL_STORAGE_ENDPOINT (host:port), a logical table `name` is the table
// NOSQL_STORAGE_TABLE_<name> names, and NOSQL_STORAGE_TYPE must be `scylladb` (SeBS's value)
// or `dynamodb`. Keys and region are "None" unless NOSQL_STORAGE_ACCESS_KEY,
// NOSQL_STORAGE_SECRET_KEY and NOSQL_STORAGE_REGION are set (for a real DynamoDB). The
// client is the AWS SDK v3's document client. Every failure rejects with an Error naming
// the table, the client's error as its cause.

const { DynamoDBClient } = require('@aws-sdk/client-dynamodb');
const {
  DynamoDBDocumentClient,
  PutCommand,
  GetCommand,
  UpdateCommand,
  QueryCommand,
  DeleteCommand,
} = require('@aws-sdk/lib-dynamodb');

class nosql {
  constructor() {
    const kind = process.env.NOSQL_STORAGE_TYPE;
    if (kind !== 'scylladb' && kind !== 'dynamodb') {
      throw new Error(
        `failed to connect to NoSQL storage: NOSQL_STORAGE_TYPE is ${JSON.stringify(kind)}, ` +
          "expected 'scylladb' or 'dynamodb' (does the benchmark's input.py declare allocate_nosql()?)"
      );
    }
    let endpoint = process.env.NOSQL_STORAGE_ENDPOINT;
    if (!endpoint) {
      throw new Error('failed to connect to NoSQL storage: NOSQL_STORAGE_ENDPOINT is not set');
    }
    if (!endpoint.includes('://')) {
      endpoint = `http://${endpoint}`;
    }
    this._endpoint = endpoint;
    const client = new DynamoDBClient({
      endpoint,
      region: process.env.NOSQL_STORAGE_REGION || 'None',
      credentials: {
        accessKeyId: process.env.NOSQL_STORAGE_ACCESS_KEY || 'None',
        secretAccessKey: process.env.NOSQL_STORAGE_SECRET_KEY || 'None',
      },
    });
    this.client = DynamoDBDocumentClient.from(client, {
      marshallOptions: { removeUndefinedValues: true },
    });
    this._tables = {};
  }

  _get_table(table_name) {
    if (!(table_name in this._tables)) {
      const env_name = `NOSQL_STORAGE_TABLE_${table_name}`;
      if (!(env_name in process.env)) {
        throw new Error(
          `failed to find table ${table_name}: ${env_name} is not set ` +
            "(is it in the benchmark's allocate_nosql()?)"
        );
      }
      this._tables[table_name] = process.env[env_name];
    }
    return this._tables[table_name];
  }

  async _send(what, table_name, makeCommand) {
    const table = this._get_table(table_name);
    try {
      return await this.client.send(makeCommand(table));
    } catch (e) {
      throw new Error(
        `failed to ${what} table ${table_name} (${table} at ${this._endpoint}): ${e.name}: ${e.message}`,
        { cause: e }
      );
    }
  }

  static _key(primary_key, secondary_key) {
    return { [primary_key[0]]: primary_key[1], [secondary_key[0]]: secondary_key[1] };
  }

  // Puts `data` with the two keys (added to `data`, as SeBS does) as one item.
  async insert(table_name, primary_key, secondary_key, data) {
    data[primary_key[0]] = primary_key[1];
    data[secondary_key[0]] = secondary_key[1];
    await this._send('put an item into', table_name, (TableName) => new PutCommand({ TableName, Item: data }));
  }

  // The item with these keys, or undefined when there is none.
  async get(table_name, primary_key, secondary_key) {
    const res = await this._send(
      'get an item from',
      table_name,
      (TableName) => new GetCommand({ TableName, Key: nosql._key(primary_key, secondary_key) })
    );
    return res.Item;
  }

  // Sets the attributes in `updates` on the item with these keys.
  async update(table_name, primary_key, secondary_key, updates) {
    const entries = Object.entries(updates);
    if (entries.length === 0) {
      return;
    }
    const names = {};
    const values = {};
    const assignments = [];
    // Attribute names go through placeholders: DynamoDB reserves words like 'status'.
    entries.forEach(([name, value], i) => {
      names[`#a${i}`] = name;
      values[`:v${i}`] = value;
      assignments.push(`#a${i} = :v${i}`);
    });
    await this._send(
      'update an item in',
      table_name,
      (TableName) =>
        new UpdateCommand({
          TableName,
          Key: nosql._key(primary_key, secondary_key),
          UpdateExpression: `SET ${assignments.join(', ')}`,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        })
    );
  }

  // Every item with this primary key, ascending by sort key.
  async query(table_name, primary_key, _secondary_key_name) {
    const items = [];
    let start;
    do {
      const res = await this._send(
        'query',
        table_name,
        (TableName) =>
          new QueryCommand({
            TableName,
            KeyConditionExpression: '#k = :v',
            ExpressionAttributeNames: { '#k': primary_key[0] },
            ExpressionAttributeValues: { ':v': primary_key[1] },
            ExclusiveStartKey: start,
          })
      );
      items.push(...(res.Items || []));
      start = res.LastEvaluatedKey;
    } while (start);
    return items;
  }

  // Deletes the item with these keys (none is fine).
  async delete(table_name, primary_key, secondary_key) {
    await this._send(
      'delete an item from',
      table_name,
      (TableName) => new DeleteCommand({ TableName, Key: nosql._key(primary_key, secondary_key) })
    );
  }

  static get_instance() {
    if (!nosql.instance) {
      nosql.instance = new nosql();
    }
    return nosql.instance;
  }
}

exports.nosql = nosql;
