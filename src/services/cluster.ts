/**
 * etcdserverpb.Cluster. MemberList keeps clients on the proxy, as etcd's proxy does, while
 * --advertise-client-url is set (the default):
 * - with --resolver-prefix it lists every proxy registered under the prefix (upstream/client/
 *   registered-proxies.ts), as etcd's proxy does: ID 0, the hostname as name, the registered address as the
 *   client URL; itself while none is registered yet;
 * - without a prefix it answers etcd's own members (IDs, names, peer URLs, learner flags) with their client
 *   URLs replaced by the advertise URL, so clients that sync their endpoints from MemberList keep dialling
 *   the proxy, and clients that look the Status leader ID up in the member list (python-etcd3) find it.
 *   etcd's proxy answers one made-up member there.
 * With --advertise-client-url='' MemberList is forwarded unchanged. The header is always etcd's (etcdctl
 * prints its cluster id; etcd's proxy sends none).
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { MemberListResponseSchema, MemberSchema, type Cluster } from "../../gen/etcdserverpb/rpc_pb.js";
import type { Upstream } from "../upstream/client/upstream.js";

export interface ClusterOptions {
  advertiseClientUrl: string;
  hostname: string;
  /** The proxies registered under --resolver-prefix; undefined without a prefix. */
  registered?: { members(): { addr: string; name: string }[] };
}

export function clusterService(up: Upstream, o: ClusterOptions): ServiceImpl<typeof Cluster> {
  return {
    memberAdd: (req, ctx) => up.unary(ctx, (c, opt) => c.cluster.memberAdd(req, opt), { readOnly: false }),
    memberRemove: (req, ctx) => up.unary(ctx, (c, opt) => c.cluster.memberRemove(req, opt), { readOnly: false }),
    memberUpdate: (req, ctx) => up.unary(ctx, (c, opt) => c.cluster.memberUpdate(req, opt), { readOnly: false }),
    memberPromote: (req, ctx) => up.unary(ctx, (c, opt) => c.cluster.memberPromote(req, opt), { readOnly: false }),
    memberList: async (req, ctx) => {
      const res = await up.unary(ctx, (c, opt) => c.cluster.memberList(req, opt), { readOnly: true });
      if (o.advertiseClientUrl === "") return res;
      if (o.registered) {
        const proxies = o.registered.members();
        const members = proxies.length > 0
          ? proxies.map((p) => create(MemberSchema, { name: p.name, clientURLs: [p.addr] }))
          : [create(MemberSchema, { name: o.hostname, clientURLs: [o.advertiseClientUrl] })];
        return create(MemberListResponseSchema, { header: res.header, members });
      }
      // A member not started yet has no client URLs: it gets none here either.
      return create(MemberListResponseSchema, {
        header: res.header,
        members: res.members.map((m) => create(MemberSchema, { ...m, clientURLs: m.clientURLs.length > 0 ? [o.advertiseClientUrl] : [] })),
      });
    },
  };
}
