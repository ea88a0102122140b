import { randomUUID } from 'node:crypto';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { DeleteMessageCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { StorageConfig } from '../config.ts';
import { backend, isNotFound } from '../storage/backend-errors.ts';
import { listObjects } from '../storage/bucket-listing.ts';
import { DEAD_LETTER_PREFIX, incomingKey } from '../storage/object-layout.ts';

/**
 * Dead letters: processing that was given up on, kept until an operator redrives it.
 *
 * A letter has the shape Lambda's on-failure destination gives an asynchronous invocation that
 * failed after its retries:
 *
 *   { version: '1.0', timestamp, requestContext: { condition, requestId?, approximateInvokeCount? },
 *     requestPayload: <the event>, responsePayload?: { errorType, errorMessage } }
 *
 * so that letters written by the Lambda service (a run killed by its timeout, a crash, an
 * error thrown on every retry) and letters written by our own runs (a file whose last attempt
 * failed, see process-upload.ts) are read alike: the object-created records of `requestPayload`
 * name the uploads to process again. Letters hold file ids and error types, never content.
 *
 * Two stores behind one interface: an SQS queue where STORAGE_DEAD_LETTER_QUEUE_URL names one
 * (deployed: the template's on-failure destination), or else JSON objects under dead-letters/
 * in the final bucket (npm start, compose: nothing else to run).
 */

export interface DeadLetter {
  version: '1.0';
  timestamp: string;
  requestContext: { condition: string; requestId?: string; functionArn?: string; approximateInvokeCount?: number };
  requestPayload: unknown;
  responsePayload?: { errorType?: string; errorMessage?: string };
}

export interface ReceivedLetter {
  /** The store's own id of the letter (for logs). */
  id: string;
  /** The parsed body, or undefined when it is not JSON. */
  letter: unknown;
  /** Removes the letter from the store: it has been dealt with. */
  ack(): Promise<void>;
}

export interface DeadLetterStore {
  put(letter: DeadLetter): Promise<void>;
  /** Letters not yet acknowledged, at most `max`; a letter is seen at most once per call. */
  receive(max: number): AsyncGenerator<ReceivedLetter>;
}

type LetterError = { errorType: string; errorMessage: string };

/** The letter of an event that could not be handled (as Lambda's destination writes it). */
export function letterForEvent(event: unknown, condition: string, error: LetterError, invokeCount?: number): DeadLetter {
  return {
    version: '1.0',
    timestamp: new Date().toISOString(),
    requestContext: { condition, requestId: randomUUID(), ...(invokeCount !== undefined && { approximateInvokeCount: invokeCount }) },
    requestPayload: event,
    responsePayload: error,
  };
}

/** The letter a run files for a file it gives up on: a record naming its upload, as a trigger would. */
export function letterForUpload(incomingBucket: string, fileId: string, error: LetterError): DeadLetter {
  const record = {
    eventSource: 'transcribo:storage',
    eventName: 'ObjectCreated:Redrive',
    s3: { bucket: { name: incomingBucket }, object: { key: incomingKey(fileId) } },
  };
  return letterForEvent({ Records: [record] }, 'ProcessingFailed', error);
}

class BucketDeadLetters implements DeadLetterStore {
  readonly #s3: S3Client;
  readonly #bucket: string;

  constructor(s3: S3Client, bucket: string) {
    this.#s3 = s3;
    this.#bucket = bucket;
  }

  async put(letter: DeadLetter): Promise<void> {
    // Time first, so a listing reads oldest first.
    const Key = `${DEAD_LETTER_PREFIX}${letter.timestamp.replace(/[:.]/g, '')}-${randomUUID()}.json`;
    await backend('putDeadLetter', undefined, () =>
      this.#s3.send(new PutObjectCommand({ Bucket: this.#bucket, Key, Body: JSON.stringify(letter), ContentType: 'application/json' })),
    );
  }

  async *receive(max: number): AsyncGenerator<ReceivedLetter> {
    let seen = 0;
    for await (const object of listObjects(this.#s3, this.#bucket, DEAD_LETTER_PREFIX)) {
      if (seen++ >= max) return;
      let body: string;
      try {
        const out = await this.#s3.send(new GetObjectCommand({ Bucket: this.#bucket, Key: object.key }));
        body = (await out.Body?.transformToString('utf8')) ?? '';
      } catch (error) {
        if (isNotFound(error)) continue; // taken by a concurrent redrive
        throw error;
      }
      yield {
        id: object.key,
        letter: parseJson(body),
        ack: () =>
          backend('ackDeadLetter', undefined, () =>
            this.#s3.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: object.key })),
          ).then(() => undefined),
      };
    }
  }
}

class SqsDeadLetters implements DeadLetterStore {
  readonly #sqs: SQSClient;
  readonly #queueUrl: string;

  constructor(region: string, queueUrl: string) {
    this.#sqs = new SQSClient({ region });
    this.#queueUrl = queueUrl;
  }

  async put(letter: DeadLetter): Promise<void> {
    await backend('putDeadLetter', undefined, () =>
      this.#sqs.send(new SendMessageCommand({ QueueUrl: this.#queueUrl, MessageBody: JSON.stringify(letter) })),
    );
  }

  async *receive(max: number): AsyncGenerator<ReceivedLetter> {
    let seen = 0;
    while (seen < max) {
      const page = await backend('receiveDeadLetters', undefined, () =>
        this.#sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: this.#queueUrl,
            MaxNumberOfMessages: Math.min(10, max - seen),
            WaitTimeSeconds: 1,
            // Hidden for the rest of this redrive: a letter kept (its file still fails) is not read again in the same run.
            VisibilityTimeout: 900,
          }),
        ),
      );
      const messages = page.Messages ?? [];
      if (messages.length === 0) return;
      for (const message of messages) {
        seen++;
        const receipt = message.ReceiptHandle!;
        yield {
          id: message.MessageId ?? receipt.slice(0, 16),
          letter: parseJson(message.Body ?? ''),
          ack: () =>
            backend('ackDeadLetter', undefined, () =>
              this.#sqs.send(new DeleteMessageCommand({ QueueUrl: this.#queueUrl, ReceiptHandle: receipt })),
            ).then(() => undefined),
        };
      }
    }
  }
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

const stores = new WeakMap<StorageConfig, DeadLetterStore>();

/** The store the configuration names, one per configuration. */
export function deadLetterStore(config: StorageConfig, s3: S3Client): DeadLetterStore {
  let store = stores.get(config);
  if (store === undefined) {
    store =
      config.deadLetterQueueUrl === undefined
        ? new BucketDeadLetters(s3, config.bucket)
        : new SqsDeadLetters(config.region, config.deadLetterQueueUrl);
    stores.set(config, store);
  }
  return store;
}
