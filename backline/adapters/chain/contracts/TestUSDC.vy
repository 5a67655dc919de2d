# pragma version ~=0.4.3
"""
@title Backline test USDC (dev chain only)
@notice A 6-decimal ERC-20 with EIP-3009 transferWithAuthorization, shaped like
        Circle's FiatToken v2 (name "USD Coin", version "2") so that x402 clients sign
        the same EIP-712 messages they sign for real USDC. The deployer may mint.
        This contract exists only on Backline's in-process development chain.
"""

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256

event AuthorizationUsed:
    authorizer: indexed(address)
    nonce: indexed(bytes32)

name: public(String[32])
symbol: public(String[8])
decimals: public(uint8)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
authorizationState: public(HashMap[address, HashMap[bytes32, bool]])
minter: public(address)

EIP712_DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
TRANSFER_WITH_AUTHORIZATION_TYPEHASH: constant(bytes32) = keccak256(
    "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
)
VERSION: constant(String[1]) = "2"
SECP256K1_HALF_N: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168


@deploy
def __init__():
    self.name = "USD Coin"
    self.symbol = "USDC"
    self.decimals = 6
    self.minter = msg.sender


@view
@external
def version() -> String[1]:
    return VERSION


@view
@internal
def _domain_separator() -> bytes32:
    return keccak256(
        abi_encode(
            EIP712_DOMAIN_TYPEHASH,
            keccak256(convert(self.name, Bytes[32])),
            keccak256(VERSION),
            chain.id,
            self,
        )
    )


@view
@external
def DOMAIN_SEPARATOR() -> bytes32:
    return self._domain_separator()


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    assert receiver != empty(address), "transfer to the zero address"
    assert self.balanceOf[sender] >= amount, "transfer amount exceeds balance"
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=sender, receiver=receiver, value=amount)


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    assert self.allowance[sender][msg.sender] >= amount, "transfer amount exceeds allowance"
    self.allowance[sender][msg.sender] -= amount
    self._transfer(sender, receiver, amount)
    return True


@external
def mint(receiver: address, amount: uint256) -> bool:
    assert msg.sender == self.minter, "caller is not the minter"
    assert receiver != empty(address), "mint to the zero address"
    self.totalSupply += amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=empty(address), receiver=receiver, value=amount)
    return True


@external
def transferWithAuthorization(
    _from: address,
    to: address,
    amount: uint256,
    validAfter: uint256,
    validBefore: uint256,
    nonce: bytes32,
    signature: Bytes[65],
):
    assert block.timestamp > validAfter, "authorization is not yet valid"
    assert block.timestamp < validBefore, "authorization is expired"
    assert not self.authorizationState[_from][nonce], "authorization is used or canceled"
    assert len(signature) == 65, "invalid signature length"
    r: uint256 = convert(slice(signature, 0, 32), uint256)
    s: uint256 = convert(slice(signature, 32, 32), uint256)
    v: uint256 = convert(slice(signature, 64, 1), uint256)
    if v < 27:
        v += 27
    assert s <= SECP256K1_HALF_N, "invalid signature 's' value"
    struct_hash: bytes32 = keccak256(
        abi_encode(TRANSFER_WITH_AUTHORIZATION_TYPEHASH, _from, to, amount, validAfter, validBefore, nonce)
    )
    digest: bytes32 = keccak256(concat(b"\x19\x01", self._domain_separator(), struct_hash))
    signer: address = ecrecover(digest, v, r, s)
    assert signer != empty(address) and signer == _from, "invalid signature"
    self.authorizationState[_from][nonce] = True
    log AuthorizationUsed(authorizer=_from, nonce=nonce)
    self._transfer(_from, to, amount)
