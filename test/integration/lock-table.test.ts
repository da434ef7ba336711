/** The provisioned lock table takes creates, reads and conditional writes through the SDK. */
import { ConditionalCheckFailedException, GetItemCommand, PutItemCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { dynamoDbClient, lockTable } from "../support/cloud.js";

describe("the lock table on the local cloud", () => {
  const dynamodb = dynamoDbClient();
  const TableName = lockTable();
  afterAll(() => dynamodb.destroy());

  it("creates and reads an item", async () => {
    const pk = `test#${randomUUID()}`;
    await dynamodb.send(new PutItemCommand({ TableName, Item: { pk: { S: pk }, holder: { S: "a" }, token: { N: "1" } } }));
    const { Item } = await dynamodb.send(new GetItemCommand({ TableName, Key: { pk: { S: pk } }, ConsistentRead: true }));
    expect(Item).toEqual({ pk: { S: pk }, holder: { S: "a" }, token: { N: "1" } });
  });

  it("applies a conditional write only when its condition holds, and returns the old item when it fails", async () => {
    const pk = `test#${randomUUID()}`;
    const put = (token: number) =>
      dynamodb.send(
        new PutItemCommand({
          TableName,
          Item: { pk: { S: pk }, token: { N: String(token) } },
          ConditionExpression: "attribute_not_exists(pk) OR #t < :t",
          ExpressionAttributeNames: { "#t": "token" },
          ExpressionAttributeValues: { ":t": { N: String(token) } },
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
    await put(5);
    const rejected = await put(3).catch((err: unknown) => err);
    expect(rejected).toBeInstanceOf(ConditionalCheckFailedException);
    expect((rejected as ConditionalCheckFailedException).Item).toEqual({ pk: { S: pk }, token: { N: "5" } });
    await put(6);
    const { Item } = await dynamodb.send(new GetItemCommand({ TableName, Key: { pk: { S: pk } }, ConsistentRead: true }));
    expect(Item?.["token"]).toEqual({ N: "6" });
  });

  it("increments atomically under concurrent updates", async () => {
    const pk = `test#${randomUUID()}`;
    const increments = Array.from({ length: 20 }, () =>
      dynamodb.send(
        new UpdateItemCommand({
          TableName,
          Key: { pk: { S: pk } },
          UpdateExpression: "ADD n :one",
          ExpressionAttributeValues: { ":one": { N: "1" } },
          ReturnValues: "UPDATED_NEW",
        }),
      ),
    );
    const seen = (await Promise.all(increments)).map((r) => Number(r.Attributes?.["n"]?.N));
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });
});
