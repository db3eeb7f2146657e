// Test event templates, as the AWS Lambda console offers them (Test tab → Template).
// Each is the console's sample event, so students see the shape their handler will get.

const hello = {
  key1: "value1",
  key2: "value2",
  key3: "value3",
};

const apiGatewayProxy = {
  body: "eyJ0ZXN0IjoiYm9keSJ9",
  resource: "/{proxy+}",
  path: "/path/to/resource",
  httpMethod: "POST",
  isBase64Encoded: true,
  queryStringParameters: { foo: "bar" },
  multiValueQueryStringParameters: { foo: ["bar"] },
  pathParameters: { proxy: "/path/to/resource" },
  stageVariables: { baz: "qux" },
  headers: {
    Accept: "text/html,application/xhtml+xml,application/xml;q=0.9,image/webp,*/*;q=0.8",
    "Accept-Encoding": "gzip, deflate, sdch",
    "Accept-Language": "en-US,en;q=0.8",
    "Cache-Control": "max-age=0",
    "CloudFront-Forwarded-Proto": "https",
    "CloudFront-Is-Desktop-Viewer": "true",
    "CloudFront-Is-Mobile-Viewer": "false",
    "CloudFront-Is-SmartTV-Viewer": "false",
    "CloudFront-Is-Tablet-Viewer": "false",
    "CloudFront-Viewer-Country": "US",
    Host: "1234567890.execute-api.us-east-1.amazonaws.com",
    "Upgrade-Insecure-Requests": "1",
    "User-Agent": "Custom User Agent String",
    Via: "1.1 08f323deadbeefa7af34d5feb414ce27.cloudfront.net (CloudFront)",
    "X-Amz-Cf-Id": "cDehVQoZnx43VYQb9j2-nvCh-9z396Uhbp027Y2JvkCPNLmGJHqlaA==",
    "X-Forwarded-For": "127.0.0.1, 127.0.0.2",
    "X-Forwarded-Port": "443",
    "X-Forwarded-Proto": "https",
  },
  multiValueHeaders: {
    Accept: ["text/html,application/xhtml+xml,application/xml;q=0.9,image/webp,*/*;q=0.8"],
    "Accept-Encoding": ["gzip, deflate, sdch"],
    "Accept-Language": ["en-US,en;q=0.8"],
    "Cache-Control": ["max-age=0"],
    Host: ["0123456789.execute-api.us-east-1.amazonaws.com"],
    "User-Agent": ["Custom User Agent String"],
    "X-Forwarded-For": ["127.0.0.1, 127.0.0.2"],
    "X-Forwarded-Port": ["443"],
    "X-Forwarded-Proto": ["https"],
  },
  requestContext: {
    accountId: "123456789012",
    resourceId: "123456",
    stage: "prod",
    requestId: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
    requestTime: "09/Apr/2015:12:34:56 +0000",
    requestTimeEpoch: 1428582896000,
    identity: {
      cognitoIdentityPoolId: null,
      accountId: null,
      cognitoIdentityId: null,
      caller: null,
      accessKey: null,
      sourceIp: "127.0.0.1",
      cognitoAuthenticationType: null,
      cognitoAuthenticationProvider: null,
      userArn: null,
      userAgent: "Custom User Agent String",
      user: null,
    },
    path: "/prod/path/to/resource",
    resourcePath: "/{proxy+}",
    httpMethod: "POST",
    apiId: "1234567890",
    protocol: "HTTP/1.1",
  },
};

const s3Put = {
  Records: [
    {
      eventVersion: "2.0",
      eventSource: "aws:s3",
      awsRegion: "us-east-1",
      eventTime: "1970-01-01T00:00:00.000Z",
      eventName: "ObjectCreated:Put",
      userIdentity: { principalId: "EXAMPLE" },
      requestParameters: { sourceIPAddress: "127.0.0.1" },
      responseElements: {
        "x-amz-request-id": "EXAMPLE123456789",
        "x-amz-id-2": "EXAMPLE123/5678abcdefghijklambdaisawesome/mnopqrstuvwxyzABCDEFGH",
      },
      s3: {
        s3SchemaVersion: "1.0",
        configurationId: "testConfigRule",
        bucket: {
          name: "example-bucket",
          ownerIdentity: { principalId: "EXAMPLE" },
          arn: "arn:aws:s3:::example-bucket",
        },
        object: {
          key: "test%2Fkey",
          size: 1024,
          eTag: "0123456789abcdef0123456789abcdef",
          sequencer: "0A1B2C3D4E5F678901",
        },
      },
    },
  ],
};

const sqs = {
  Records: [
    {
      messageId: "19dd0b57-b21e-4ac1-bd88-01bbb068cb78",
      receiptHandle: "MessageReceiptHandle",
      body: "Hello from SQS!",
      attributes: {
        ApproximateReceiveCount: "1",
        SentTimestamp: "1523232000000",
        SenderId: "123456789012",
        ApproximateFirstReceiveTimestamp: "1523232000001",
      },
      messageAttributes: {},
      md5OfBody: "7b270e59b47ff90a553787216d55d91d",
      eventSource: "aws:sqs",
      eventSourceARN: "arn:aws:sqs:us-east-1:123456789012:MyQueue",
      awsRegion: "us-east-1",
    },
  ],
};

/** The templates in the order the select lists them: value, label, event. */
export const TEMPLATES = [
  { id: "hello-world", label: "Hello world", event: hello },
  { id: "apigateway-aws-proxy", label: "API Gateway proxy", event: apiGatewayProxy },
  { id: "s3-put", label: "S3 put", event: s3Put },
  { id: "sqs-receive-message", label: "SQS", event: sqs },
];

/** The template's event as the JSON text the editor shows. */
export function templateText(id) {
  const found = TEMPLATES.find((t) => t.id === id);
  return found ? JSON.stringify(found.event, null, 2) : null;
}
