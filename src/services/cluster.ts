/**
 * etcdserverpb.Cluster. MemberList answers with this proxy itself while --advertise-client-url is set (the
 * default, as in etcd's proxy), so clients that sync their endpoint list from MemberList keep talking to
 * the proxy instead of bypassing it. With --advertise-client-url='' it is forwarded to etcd.
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { MemberListResponseSchema, MemberSchema, ResponseHeaderSchema, type Cluster } from "../../gen/etcdserverpb/rpc_pb.js";
import type { Upstream } from "../upstream/client/upstream.js";

export interface ClusterOptions {
  advertiseClientUrl: string;
  hostname: string;
}

export function clusterService(up: Upstream, o: ClusterOptions): ServiceImpl<typeof Cluster> {
  return {
    memberAdd: (req, ctx) => up.unary(ctx, (c, opt) => c.cluster.memberAdd(req, opt), { readOnly: false }),
    memberRemove: (req, ctx) => up.unary(ctx, (c, opt) => c.cluster.memberRemove(req, opt), { readOnly: false }),
    memberUpdate: (req, ctx) => up.unary(ctx, (c, opt) => c.cluster.memberUpdate(req, opt), { readOnly: false }),
    memberPromote: (req, ctx) => up.unary(ctx, (c, opt) => c.cluster.memberPromote(req, opt), { readOnly: false }),
    memberList: async (req, ctx) => {
      if (o.advertiseClientUrl === "") return up.unary(ctx, (c, opt) => c.cluster.memberList(req, opt), { readOnly: true });
      // etcd's proxy answers without a header; etcdctl prints the header's cluster id, so take etcd's.
      const status = await up.unary(ctx, (c, opt) => c.maintenance.status({}, opt), { readOnly: true });
      return create(MemberListResponseSchema, {
        header: create(ResponseHeaderSchema, { clusterId: status.header?.clusterId ?? 0n, memberId: 0n, raftTerm: status.header?.raftTerm ?? 0n }),
        members: [create(MemberSchema, { name: o.hostname, clientURLs: [o.advertiseClientUrl] })],
      });
    },
  };
}
