/**
 * The request limits of the User Attribute Upload API (spec §2, §3), the one place they live.
 * Characters are counted as Unicode code points, so 128 emoji or 128 kanji fit in a value.
 */

/** Maximum entries of `field_name`, `user_id` included (spec §3). */
export const MAX_FIELDS = 50
/** Maximum length of one field name, in code points (spec §3). */
export const MAX_FIELD_NAME = 50
/** Maximum rows in `values`: users per request (spec §2, §3, §8). */
export const MAX_USERS = 100
/** Maximum length of one value, in code points (spec §3). */
export const MAX_VALUE_CODE_POINTS = 128
/** The field every request must carry (spec §4). */
export const USER_ID_FIELD = 'user_id'
