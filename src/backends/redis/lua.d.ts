/** A Redis Lua script (./scripts/*.lua), imported as its text. */
declare module "*.lua" {
  const text: string;
  export default text;
}
