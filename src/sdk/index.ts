/**
 * traitbase SDK (`traitbase/sdk`): a typed client for any server that speaks the User Attribute
 * Upload API. No runtime dependencies; uses the global `fetch` unless one is passed in.
 * @module
 */
export { createClient } from './client.js'
export type { ClientOptions, ProfileData, SegmentPage, SegmentWhere, TraitbaseClient } from './client.js'
export { TraitbaseApiError } from './api-error.js'
export type { RetryOptions } from './retry.js'
export { BatchPacker, splitRecord } from './batch.js'
export type { AttributeValue, PackedBatch, PackerOptions, ProfileRecord, RecordChunk, SplitResult } from './batch.js'
export type { RowReport, UploadOptions, UploadProgress, UploadSummary } from './upload-profiles.js'
