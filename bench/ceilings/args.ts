/** `--listen=host:port --etcd=http://host:port`: the two things a ceiling server is told. */
export function ceilingArgs(argv: string[]): { host: string; port: number; etcdUrl: string } {
  const get = (name: string) => {
    const a = argv.find((x) => x.startsWith(`--${name}=`));
    if (!a) throw new Error(`missing --${name}=`);
    return a.slice(name.length + 3);
  };
  const listen = get("listen");
  const colon = listen.lastIndexOf(":");
  return { host: listen.slice(0, colon), port: Number(listen.slice(colon + 1)), etcdUrl: get("etcd") };
}
