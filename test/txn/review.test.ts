/**
 * Two-phase commit against the interleavings an adversarial review of the ledger-based
 * DynamoDB participant found (each failed on the code it reviewed): a fast-path run of an
 * id whose protocol run is preparing, a defineParticipant prepare finishing after a
 * duplicate run's commit, an operator's forget, an expired ledger, non-JSON inputs,
 * ambiguous ledger keys, a throttled commit, and two transaction tables over one
 * participant table. Against DynamoDB Local.
 */
import { GetItemCommand, PutItemCommand, TransactionCanceledException, UpdateItemCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { describe, expect, it } from "vitest";
import { Coordinator, DynamoDbParticipant, InvalidArgumentError, ProtocolViolationError, branch, defineParticipant, type DynamoWrite, type TxContext } from "../../lib/index.js";
import { CoordinatorCrashedError } from "../../lib/advanced.js";
import { lockTable, txnTable } from "../support/cloud.js";
import { holdResponse, touches } from "../support/intercept.js";
import { txnScene } from "../support/txn.js";

const scene = txnScene("r");
const { fresh, ownClient, item, account, open, credit, protocol, accountsOn, decisionsOn, phaseTwoOn } = scene;
const ledgerKey = (participantId: string, txId: string) => ({ pk: { S: `part#${encodeURIComponent(participantId)}#${txId}` } });

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe("two-phase commit against the review's interleavings", () => {
  it("R1 a fast-path run of an id whose protocol run is preparing joins it and reports the logged decision", async () => {
    const a = fresh("acct");
    await open(a, 0);
    const txId = fresh("tx");
    const pClient = ownClient();
    // Protocol run P: its prepare TransactWriteItems (ledger + lock) lands; the response is held.
    const slow = holdResponse(pClient, touches(lockTable()));
    const p = protocol(pClient).run(txId, [branch(accountsOn(pClient), [credit(a, 7)])]);
    await slow.held;
    // Fast-path run F of the same id and the same branches (e.g. a caller's retry through the txn service).
    const fClient = ownClient();
    const f = await new Coordinator({ tableName: txnTable(), dynamodb: fClient }).run(txId, [branch(accountsOn(fClient), [credit(a, 7)])]);
    slow.release();
    expect(await p).toMatchObject({ outcome: "committed" });
    const logged = (await protocol(scene.db).status(txId))!.status;
    expect(logged).toBe("committed");
    expect((await account(a)).balance).toBe(7);
    expect(f.outcome).toBe(logged); // it joined the protocol run instead of reporting its own abort
  });

  it("R2 defineParticipant: a duplicate run waits for the first prepare's vote instead of reserving again, and never releases a committed transaction", async () => {
    const id = fresh("book");
    const txId = fresh("tx");
    const holdKey = { pk: { S: `hold#${id}#${txId}` } };
    const calls: string[] = [];
    const move = (client: DynamoDBClient, from: string, to: string) =>
      client
        .send(new UpdateItemCommand({ TableName: lockTable(), Key: holdKey, UpdateExpression: "SET #s = :to", ConditionExpression: "#s = :from", ExpressionAttributeNames: { "#s": "state" }, ExpressionAttributeValues: { ":to": { S: to }, ":from": { S: from } } }))
        .catch(() => undefined);
    // Idempotent per transaction id, as the contract asks (the same shape as two-phase.test.ts's ledger()).
    const book = (client: DynamoDBClient, who: string, gate: { entered: () => void; go: Promise<void> }) =>
      defineParticipant<{ amount: number }>({
        id,
        tableName: txnTable(),
        dynamodb: client,
        prepare: async () => {
          gate.entered();
          await gate.go;
          calls.push(`${who}:prepare`);
          await client.send(new PutItemCommand({ TableName: lockTable(), Item: { ...holdKey, state: { S: "held" } } }));
          return true;
        },
        commit: async () => void (calls.push(`${who}:commit`), await move(client, "held", "applied")),
        abort: async () => void (calls.push(`${who}:abort`), await move(client, "held", "released")),
      });
    const [in1, go1, in2, go2] = [deferred(), deferred(), deferred(), deferred()];
    go2.resolve(); // run 2 may go ahead at once, if it ever gets into the user's prepare
    const [c1, c2] = [ownClient(), ownClient()];
    const r1 = protocol(c1).run(txId, [branch(book(c1, "run1", { entered: in1.resolve, go: go1.promise }), { amount: 1 })]);
    await in1.promise; // run 1 claimed the prepare and is inside the user's prepare
    const r2 = protocol(c2).run(txId, [branch(book(c2, "run2", { entered: in2.resolve, go: go2.promise }), { amount: 1 })]);
    await new Promise((r) => setTimeout(r, 200)); // run 2 is waiting for run 1's vote
    go1.resolve();
    expect(await r1).toMatchObject({ outcome: "committed", acknowledged: true });
    expect(await r2).toMatchObject({ outcome: "committed" });
    const { Item } = await scene.db.send(new GetItemCommand({ TableName: lockTable(), Key: holdKey, ConsistentRead: true }));
    expect(calls.filter((c) => c.startsWith("run2:prepare") || c.endsWith(":abort"))).toEqual([]); // one prepare ran, nothing was released
    expect(Item?.["state"]?.S).toBe("applied");
  });

  it("R3 after an operator forgets a committed transaction, the next transaction on the item applies its commit and goes ahead", async () => {
    const a = fresh("acct");
    await open(a, 10);
    const txId = fresh("tx");
    await expect(protocol(ownClient(), {}, { crashAt: (p) => p === "phase2:0" }).run(txId, [branch(accountsOn(scene.db), [credit(a, 5)])])).rejects.toBeInstanceOf(CoordinatorCrashedError);
    const ops = protocol(scene.db);
    await ops.override(txId, { action: "forget", operator: "ops", reason: "phase two kept failing" });
    await ops.recover({ prefix: txId }); // a done record is not in doubt: nothing to do
    const next = await ops.run(fresh("tx"), [branch(accountsOn(scene.db), [credit(a, 1)])]);
    expect(next.outcome).toBe("committed"); // before the fix: aborted, "held by transaction ..., not yet finished"
    expect(await account(a)).toEqual({ balance: 16, locked: undefined }); // before the fix: { balance: 10, locked: txId }
  });

  it("R4 a prepared ledger never expires before the decision reaches it", async () => {
    const a = fresh("acct");
    await open(a, 10);
    const txId = fresh("tx");
    const participant = accountsOn(scene.db);
    const c = protocol(scene.db, {}, { crashAt: (p) => p === "phase2:0" });
    await expect(c.run(txId, [branch(participant, [credit(a, 5)])])).rejects.toBeInstanceOf(CoordinatorCrashedError);
    const { Item: ledger } = await scene.db.send(new GetItemCommand({ TableName: txnTable(), Key: ledgerKey(participant.id, txId), ConsistentRead: true }));
    expect(ledger?.["state"]?.S).toBe("prepared");
    expect(ledger?.["ttl"]).toBeUndefined(); // kept until the decision reaches it
    const recovery = protocol(scene.db);
    expect(await phaseTwoOn(scene.db).drive((await recovery.status(txId))!, "committed")).toMatchObject({ acknowledged: true });
    const { Item: after } = await scene.db.send(new GetItemCommand({ TableName: txnTable(), Key: ledgerKey(participant.id, txId), ConsistentRead: true }));
    expect(after?.["state"]?.S).toBe("committed");
    expect(after?.["ttl"]?.N).toBeDefined(); // a final state expires with the decision record
    expect(await account(a)).toEqual({ balance: 15, locked: undefined });
  });

  it("R5 refuses inputs that would not survive the log's JSON (phase two applies writes from the log)", async () => {
    const k = fresh("acct");
    await open(k, 0);
    const write = { type: "update", key: { pk: k }, set: { tags: new Set(["x", "y"]) } } as DynamoWrite;
    await expect(protocol(scene.db).run(fresh("tx"), [branch(accountsOn(scene.db), [write])])).rejects.toBeInstanceOf(InvalidArgumentError);
    expect((await item(k))?.["tags"]).toBeUndefined();
  });

  it("R6 ledger keys are unambiguous: participant `dynamodb:<t>` in tx `L#<id>` and participant `dynamodb:<t>#L` in tx `<id>` keep separate ledgers", async () => {
    const [a, b] = [fresh("acct"), fresh("acct")];
    await open(a, 10);
    await open(b, 10);
    const base = fresh("tx");
    const aTx = `L#${base}`;
    const plain = accountsOn(scene.db);
    const labelled = accountsOn(scene.db, "L");
    // Transaction aTx: committed in the log, its phase two not yet delivered (ledger `prepared`).
    await expect(protocol(scene.db, {}, { crashAt: (p) => p === "phase2:0" }).run(aTx, [branch(plain, [credit(a, 5)])])).rejects.toBeInstanceOf(CoordinatorCrashedError);
    // An unrelated transaction `base` at the labelled participant, on another item.
    const other = await protocol(scene.db).run(base, [branch(labelled, [credit(b, 1)])]);
    expect(other.outcome).toBe("committed"); // before the fix: aborted (it met aTx's ledger), and its abort overwrote that ledger with `aborted`
    const tx: TxContext = { txId: aTx, deadline: Date.now() + 5000, decisions: decisionsOn(scene.db) };
    await expect(plain.commit(tx, [credit(a, 5)])).resolves.toBeUndefined(); // before the fix: ProtocolViolationError "commit after abort"
    expect(await account(a)).toEqual({ balance: 15, locked: undefined });
  });

  it("R7 a throttled commit is a transient error to retry, not a protocol violation", async () => {
    const a = fresh("acct");
    await open(a, 1);
    const client = ownClient();
    const participant = new DynamoDbParticipant({ tableName: lockTable(), dynamodb: client, transactionTable: txnTable() });
    const tx: TxContext = { txId: fresh("tx"), deadline: Date.now() + 5000 };
    expect(await participant.prepare(tx, [credit(a, 1)])).toEqual({ vote: "yes" });
    let armed = true;
    (client.middlewareStack as unknown as { add(m: unknown, o: object): void }).add(
      (next: (x: unknown) => Promise<unknown>, context: { commandName?: string }) => async (args: unknown) => {
        if (!armed || context.commandName !== "TransactWriteItemsCommand") return next(args);
        armed = false;
        throw new TransactionCanceledException({ message: "Transaction cancelled", $metadata: {}, CancellationReasons: [{ Code: "None" }, { Code: "ThrottlingError", Message: "Throughput exceeds the current capacity" }] });
      },
      { step: "finalizeRequest", priority: "low", name: "throttle-once" },
    );
    const first = await participant.commit(tx, [credit(a, 1)]).catch((e: unknown) => e);
    expect(first).not.toBeInstanceOf(ProtocolViolationError); // before the fix: ProtocolViolationError "an item lost this transaction's lock ..."
  });

  it("R9 two transaction tables over one participant table: a prepare never presumes abort for a lock placed under the other table", async () => {
    const a = fresh("acct");
    await open(a, 10);
    const txId = fresh("tx");
    // T, coordinated through the txn table: prepared (a locked), committed, phase two not yet delivered.
    await expect(protocol(scene.db, {}, { crashAt: (p) => p === "phase2:0" }).run(txId, [branch(accountsOn(scene.db), [credit(a, 5)])])).rejects.toBeInstanceOf(CoordinatorCrashedError);
    // U, coordinated by a second deployment whose transaction table is another table (here: the lock table, which has the same `pk` key).
    const otherDeployment = new Coordinator({ tableName: lockTable(), dynamodb: scene.db, fastPath: false, timeoutMs: 5000 });
    const u = await otherDeployment.run(fresh("tx"), [branch(accountsOn(scene.db), [credit(a, 1)])]);
    expect(u.outcome).toBe("aborted"); // before the fix: committed, after releasing T's lock as "presumed aborted" in the wrong log
    const home = protocol(scene.db);
    const driven = await phaseTwoOn(scene.db).drive((await home.status(txId))!, "committed");
    expect(driven.acknowledged).toBe(true); // before the fix: false (ProtocolViolationError: an item lost this transaction's lock)
    expect((await account(a)).balance).toBe(u.outcome === "committed" ? 16 : 15); // before the fix: 11 — T's committed credit is lost
  });
});
