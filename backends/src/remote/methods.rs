//! The one list of the Store RPC's calls: every [`MailStore`] method once, in wire
//! order. The protocol's [`Request`](super::Request) enum and [`Request::user`]
//! (`protocol.rs`), the client's `impl MailStore for RemoteStore` (`client.rs`) and the
//! node's dispatch (`server.rs`) are all made from it, so a new MailStore method gets
//! its RPC by one line here, and a method left out does not build (the client would not
//! implement the trait) or, for a method with a default body, fails
//! `tests/remote_methods.rs`.
//!
//! [`Request::user`]: super::Request::user

use crate::types::*;

/// The list. `store_rpc!(generator)` calls the macro `generator` with the list sorted
/// out for it (see the rules below the list). Each line is one of:
///
/// - `Variant => fn method(user: &UserId, …) -> T;` a MailStore method, copied from the
///   trait (every method names its user first, so [`Request::user`] knows it).
///   Generated on both ends: the client sends `Request::Variant` with the arguments as
///   they travel ([`Arg`]), the node calls `method` on its store, and the answer comes
///   back as `T`'s [`Response`](super::Response) (`protocol.rs`'s `Answer`).
/// - `…, client by hand;` the node side is generated, the client's is written in
///   `client.rs`'s `by_hand` module. `append`: the client decides per call whether the
///   bodies ride in the call (`Append`) or follow it in `Chunk` frames
///   (`AppendStreamed`); the node puts the latter together on the link and then runs
///   the generated `Append`.
/// - `…, by hand;` both ends are written by hand. `watch`: its answer is a stream, not
///   a value. The client registers the feed under the call's id before the call goes
///   out, so that no notification is missed; the node forwards the store's feed as
///   `Notify` frames until `Unwatch` or the end of the link (`server.rs`'s
///   `LinkState::call`).
/// - `link Variant { … }` / `link Variant;` a call that is not a MailStore method: the
///   link's own bookkeeping, answered by `LinkState::call` (`Unwatch`, `NodeStatus`,
///   `AppendStreamed`). It is listed only to keep its place on the wire.
///
/// What every call gets from the transport, generated or not, is not in the list: the
/// deadline and the sent/unsent distinction (`RemoteStore::call_on`), answers with
/// bodies cut into `Part`s and `Piece`s and put back together (`server::answer`,
/// `client::AnswerBodies`), the node's admission check by [`Request::user`] (the link
/// loop in `server.rs`), and a call or answer too large for a frame.
///
/// Order is the wire: postcard numbers the variants in order, so a new line goes at the
/// end, and into `protocol.rs`'s test that pins each call's number (a change to an
/// existing line, or a line put in before others, changes the encoding and bumps
/// [`PROTOCOL_VERSION`](crate::net::PROTOCOL_VERSION)).
///
/// [`Request::user`]: super::Request::user
macro_rules! store_rpc {
    ($generator:ident) => {
        $crate::remote::methods::store_rpc! { @next $generator [[] [] [] [] [] [] [] []]
            OpenUser => fn open_user(user: &UserId) -> ();
            List => fn list(user: &UserId) -> MailboxList;
            CreateMailbox => fn create_mailbox(
                user: &UserId,
                name: &MailboxName,
                special_use: Option<SpecialUse>,
            ) -> ObjectId;
            DeleteMailbox => fn delete_mailbox(user: &UserId, name: &MailboxName) -> ();
            RenameMailbox => fn rename_mailbox(
                user: &UserId,
                from: &MailboxName,
                to: &MailboxName,
            ) -> ();
            SetSubscribed => fn set_subscribed(
                user: &UserId,
                name: &MailboxName,
                subscribed: bool,
            ) -> ();
            Status => fn status(user: &UserId, name: &MailboxName) -> MailboxStatus;
            Select => fn select(user: &UserId, name: &MailboxName) -> MailboxSnapshot;
            ChangesSince => fn changes_since(
                user: &UserId,
                name: &MailboxName,
                since: ModSeq,
            ) -> Changes;
            /// Starts a change feed; notifications carry this call's id.
            Watch => fn watch(user: &UserId, name: &MailboxName) -> ChangeFeed, by hand;
            /// Ends the feed started by the call `id`.
            link Unwatch { id: u64 }
            Fetch => fn fetch(user: &UserId, name: &MailboxName, uids: &[Uid]) -> Vec<MessageBody>;
            Append => fn append(
                user: &UserId,
                name: &MailboxName,
                messages: Vec<NewMessage>,
            ) -> AppendOutcome, client by hand;
            StoreFlags => fn store_flags(
                user: &UserId,
                name: &MailboxName,
                uids: &[Uid],
                change: &FlagChange,
                unchanged_since: Option<ModSeq>,
            ) -> StoreOutcome;
            Copy => fn copy(
                user: &UserId,
                from: &MailboxName,
                uids: &[Uid],
                to: &MailboxName,
            ) -> CopyOutcome;
            Move => fn move_messages(
                user: &UserId,
                from: &MailboxName,
                uids: &[Uid],
                to: &MailboxName,
            ) -> CopyOutcome;
            Expunge => fn expunge(
                user: &UserId,
                name: &MailboxName,
                uids: Option<&[Uid]>,
            ) -> Vec<Uid>;
            /// The node's health: whether it is caught up and how far its peers lag.
            link NodeStatus;
            FetchHeaders => fn fetch_headers(
                user: &UserId,
                name: &MailboxName,
                uids: &[Uid],
            ) -> Vec<MessageBody>;
            /// Answered by the node's own claims, so sessions through every gateway
            /// share them.
            Recent => fn recent(user: &UserId, name: &MailboxName, claim: bool) -> RecentRange;
            /// [`MailStore::append`](crate::MailStore::append) with bodies that do not
            /// ride in the call: `streamed[i]` is the length of message `i`'s body,
            /// which follows the call in [`ToNode::Chunk`](super::ToNode::Chunk)s (in
            /// message order, each body's chunks in order); 0 means the body is in
            /// `messages` (the others are empty there). The node runs the append once
            /// every body is whole. It refuses a call whose streamed bodies together
            /// exceed its limit (`limits.append_limit` on the node), and a chunk that
            /// would take a body past its announced length; either way it keeps nothing.
            link AppendStreamed {
                user: UserId,
                name: MailboxName,
                messages: Vec<NewMessage>,
                streamed: Vec<u64>,
            }
            Usage => fn usage(user: &UserId) -> Usage;
        }
    };

    // The rules that sort the list out: each line adds to the sections below (in this
    // order, kept together as one `[[…] […] …]` while the list is read), which go to
    // the generator once the list is done:
    //   variants       [ each `Request` variant, ready to declare, in wire order ]
    //   about_user     [ the variants with a `user` field ]
    //   not_about_user [ the others ]
    //   client         [ `Variant method (arguments after user) -> T;` made on the client ]
    //   client_by_hand [ `method (arguments after user) -> T;` written in `client.rs` ]
    //   node           [ `Variant method (arguments after user) -> T;` made on the node ]
    //   node_by_hand   [ the variants `server.rs` answers on the link ]
    //   methods        [ every method's name ]
    // A method's line takes three nested expansions, a link call's two: past about 40
    // lines, the crate's `recursion_limit` (128) must grow.
    (@next $generator:ident $sections:tt
        $(#[$doc:meta])* link $variant:ident {
            user: UserId $(, $field:ident: $type:ty)* $(,)?
        }
        $($rest:tt)*
    ) => {
        $crate::remote::methods::store_rpc! { @add $generator $sections
            [$(#[$doc])* $variant { user: $crate::types::UserId, $($field: $type),* },]
            [$variant] [] [] [] [] [$variant] []
            $($rest)*
        }
    };
    (@next $generator:ident $sections:tt
        $(#[$doc:meta])* link $variant:ident { $($field:ident: $type:ty),* $(,)? }
        $($rest:tt)*
    ) => {
        $crate::remote::methods::store_rpc! { @add $generator $sections
            [$(#[$doc])* $variant { $($field: $type),* },]
            [] [$variant] [] [] [] [$variant] []
            $($rest)*
        }
    };
    (@next $generator:ident $sections:tt
        $(#[$doc:meta])* link $variant:ident;
        $($rest:tt)*
    ) => {
        $crate::remote::methods::store_rpc! { @add $generator $sections
            [$(#[$doc])* $variant,]
            [] [$variant] [] [] [] [$variant] []
            $($rest)*
        }
    };
    (@next $generator:ident $sections:tt
        $(#[$doc:meta])* $variant:ident => fn $method:ident(
            user: &UserId $(, $arg:ident: $type:ty)* $(,)?
        ) -> $answer:ty $(, $($by_hand:ident)+)?;
        $($rest:tt)*
    ) => {
        $crate::remote::methods::store_rpc! { @method $generator $sections
            [$($($by_hand)+)?]
            [
                #[doc = concat!("Calls [`MailStore::", stringify!($method),
                    "`](crate::MailStore::", stringify!($method), ").")]
                $(#[$doc])*
                $variant {
                    user: $crate::types::UserId,
                    $($arg: <fn($type) as $crate::remote::methods::Arg>::Wire),*
                },
            ]
            [$variant $method ($($arg: $type),*) -> $answer;]
            [$method ($($arg: $type),*) -> $answer;]
            $variant $method
            $($rest)*
        }
    };
    // A method: the declared variant, then the method as `client`/`node` and as
    // `client_by_hand` want it, filed by who writes which end.
    (@method $generator:ident $sections:tt []
        $declared:tt $call:tt $hand:tt $variant:ident $method:ident $($rest:tt)*
    ) => {
        $crate::remote::methods::store_rpc! { @add $generator $sections
            $declared [$variant] [] $call [] $call [] [$method]
            $($rest)*
        }
    };
    (@method $generator:ident $sections:tt [client by hand]
        $declared:tt $call:tt $hand:tt $variant:ident $method:ident $($rest:tt)*
    ) => {
        $crate::remote::methods::store_rpc! { @add $generator $sections
            $declared [$variant] [] [] $hand $call [] [$method]
            $($rest)*
        }
    };
    (@method $generator:ident $sections:tt [by hand]
        $declared:tt $call:tt $hand:tt $variant:ident $method:ident $($rest:tt)*
    ) => {
        $crate::remote::methods::store_rpc! { @add $generator $sections
            $declared [$variant] [] [] $hand [] [$variant] [$method]
            $($rest)*
        }
    };
    (@method $generator:ident $sections:tt [$($by_hand:tt)*] $($rest:tt)*) => {
        compile_error!(concat!(
            "store_rpc!: after a method's answer, `, by hand` or `, client by hand`, not `, ",
            stringify!($($by_hand)*), "`"
        ));
    };
    (@add $generator:ident
        [[$($v:tt)*] [$($u:tt)*] [$($nu:tt)*] [$($c:tt)*] [$($ch:tt)*] [$($n:tt)*]
            [$($nh:tt)*] [$($m:tt)*]]
        [$($v2:tt)*] [$($u2:tt)*] [$($nu2:tt)*] [$($c2:tt)*] [$($ch2:tt)*] [$($n2:tt)*]
            [$($nh2:tt)*] [$($m2:tt)*]
        $($rest:tt)*
    ) => {
        $crate::remote::methods::store_rpc! { @next $generator
            [[$($v)* $($v2)*] [$($u)* $($u2)*] [$($nu)* $($nu2)*] [$($c)* $($c2)*]
                [$($ch)* $($ch2)*] [$($n)* $($n2)*] [$($nh)* $($nh2)*] [$($m)* $($m2)*]]
            $($rest)*
        }
    };
    (@next $generator:ident
        [[$($v:tt)*] [$($u:tt)*] [$($nu:tt)*] [$($c:tt)*] [$($ch:tt)*] [$($n:tt)*]
            [$($nh:tt)*] [$($m:tt)*]]
    ) => {
        $generator! {
            variants [$($v)*]
            about_user [$($u)*]
            not_about_user [$($nu)*]
            client [$($c)*]
            client_by_hand [$($ch)*]
            node [$($n)*]
            node_by_hand [$($nh)*]
            methods [$($m)*]
        }
    };
    (@next $generator:ident $sections:tt $($rest:tt)+) => {
        compile_error!(concat!(
            "store_rpc!: not a line of the list (see its doc): ",
            stringify!($($rest)+)
        ));
    };
}
pub(crate) use store_rpc;

/// How one argument of a MailStore method travels. Implemented for `fn(T)`, `T` being
/// the parameter's type as the trait declares it: a function type can name a borrowed
/// type (`fn(&MailboxName)`) without a lifetime, which a [`Request`](super::Request)
/// field could not, so the list copies the trait's signatures unchanged. A new kind of
/// parameter needs its `impl` here (the build says so).
pub trait Arg {
    /// The argument in a call: owned.
    type Wire;
    /// The argument as the method takes it.
    type Param<'a>;
    /// The client's side: what goes in the call.
    fn to_wire(param: Self::Param<'_>) -> Self::Wire;
    /// The node's side: what its store is called with. The call is the argument's only
    /// user, so a parameter taken by value is moved out of it.
    fn from_wire(wire: &mut Self::Wire) -> Self::Param<'_>;
}

/// Parameters taken by reference travel as the value.
macro_rules! by_reference {
    ($($type:ty),*) => {$(
        impl Arg for fn(&$type) {
            type Wire = $type;
            type Param<'a> = &'a $type;
            fn to_wire(param: Self::Param<'_>) -> Self::Wire {
                param.clone()
            }
            fn from_wire(wire: &mut Self::Wire) -> Self::Param<'_> {
                wire
            }
        }
    )*};
}

/// Small parameters taken by value travel as they are.
macro_rules! by_value {
    ($($type:ty),*) => {$(
        impl Arg for fn($type) {
            type Wire = $type;
            type Param<'a> = $type;
            fn to_wire(param: Self::Param<'_>) -> Self::Wire {
                param
            }
            fn from_wire(wire: &mut Self::Wire) -> Self::Param<'_> {
                *wire
            }
        }
    )*};
}

by_reference!(MailboxName, FlagChange);
by_value!(bool, ModSeq, Option<ModSeq>, Option<SpecialUse>);

impl Arg for fn(&[Uid]) {
    type Wire = Vec<Uid>;
    type Param<'a> = &'a [Uid];
    fn to_wire(param: Self::Param<'_>) -> Self::Wire {
        param.to_vec()
    }
    fn from_wire(wire: &mut Self::Wire) -> Self::Param<'_> {
        wire
    }
}

impl Arg for fn(Option<&[Uid]>) {
    type Wire = Option<Vec<Uid>>;
    type Param<'a> = Option<&'a [Uid]>;
    fn to_wire(param: Self::Param<'_>) -> Self::Wire {
        param.map(<[Uid]>::to_vec)
    }
    fn from_wire(wire: &mut Self::Wire) -> Self::Param<'_> {
        wire.as_deref()
    }
}

impl Arg for fn(Vec<NewMessage>) {
    type Wire = Vec<NewMessage>;
    type Param<'a> = Vec<NewMessage>;
    fn to_wire(param: Self::Param<'_>) -> Self::Wire {
        param
    }
    fn from_wire(wire: &mut Self::Wire) -> Self::Param<'_> {
        std::mem::take(wire)
    }
}

macro_rules! method_names {
    (variants [$($_variants:tt)*] about_user [$($_user:tt)*] not_about_user [$($_no_user:tt)*]
        client [$($_client:tt)*] client_by_hand [$($_client_hand:tt)*] node [$($_node:tt)*]
        node_by_hand [$($_node_hand:tt)*] methods [$($method:ident)*]
    ) => {
        /// The [`MailStore`](crate::MailStore) methods the Store RPC carries, in wire
        /// order (a test holds this against the trait).
        pub const METHODS: &[&str] = &[$(stringify!($method)),*];
    };
}
store_rpc!(method_names);
