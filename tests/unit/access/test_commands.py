"""`flask site ...` and `flask key ...`."""

import hashlib

from app.store import sites


def test_site_add_list_and_remove(cli, db):
    assert cli("site", "add", "shop", "--domain", "Shop.Test", "--domain", "www.shop.test") == (
        "Registered site shop: domains shop.test, www.shop.test\n"
    )
    assert cli("site", "add", "blog") == "Registered site blog: domains (none)\n"
    assert cli("site", "list") == "blog\t\nshop\tshop.test,www.shop.test\n"
    assert cli("site", "add", "shop", "--domain", "shop.test") == "Updated site shop: domains shop.test\n"
    cli("key", "create", "shop")
    assert cli("site", "remove", "shop") == "Removed site shop and its keys\n"
    assert sites.keys(db, "shop") == []
    assert "No site shop is registered" in cli("site", "remove", "shop", exit_code=1)


def test_site_add_refuses_a_url_for_a_domain(cli):
    assert "not a host name" in cli("site", "add", "shop", "--domain", "https://shop.test", exit_code=2)


def test_key_create_prints_the_key_once_as_its_last_line(cli, db):
    cli("site", "add", "shop", "--domain", "shop.test")
    first_line, secret = cli("key", "create", "shop").splitlines()
    key_id = first_line.split()[1]
    assert first_line.startswith(f"Key {key_id} for site shop;")
    assert secret.startswith("ak_")
    listed = cli("key", "list")
    assert key_id in listed
    assert secret not in listed


def test_key_list_by_site_and_revoke(cli):
    cli("site", "add", "shop")
    cli("site", "add", "blog")
    shop_key = cli("key", "create", "shop").split()[1]
    cli("key", "create", "blog")
    operator_key = cli("key", "create", "--operator").split()[1]
    assert [line.split("\t")[0] for line in cli("key", "list", "shop").splitlines()] == [shop_key]
    assert f"{operator_key}\t(operator)\t" in cli("key", "list")
    assert cli("key", "revoke", shop_key) == f"Revoked key {shop_key}\n"
    assert cli("key", "list", "shop") == ""
    assert f"No key {shop_key}" in cli("key", "revoke", shop_key, exit_code=1)


def test_key_create_needs_a_registered_site_or_operator(cli):
    assert "No site nobody is registered" in cli("key", "create", "nobody", exit_code=1)
    assert "Give either SITE_ID or --operator" in cli("key", "create", exit_code=2)
    assert "Give either SITE_ID or --operator" in cli("key", "create", "shop", "--operator", exit_code=2)


def test_a_server_key_is_printed_once_stored_hashed_listed_and_revoked(cli, db):
    cli("site", "add", "shop", "--domain", "shop.test")
    first_line, secret = cli("key", "create", "shop", "--server").splitlines()
    key_id = first_line.split()[2]
    assert first_line.startswith(f"Server key {key_id} for site shop;")
    assert secret.startswith("sk_")
    stored = list(db[sites.SERVER_KEYS].find())
    assert [doc["_id"] for doc in stored] == [hashlib.sha256(secret.encode()).hexdigest()]
    assert secret not in str(stored)
    assert [key.kind for key in sites.keys(db, "shop")] == [sites.SERVER]  # never a read key
    listed = cli("key", "list", "shop")
    assert listed.startswith(f"{key_id}\tshop\t")
    assert listed.rstrip("\n").endswith("\tserver")
    assert cli("key", "revoke", key_id) == f"Revoked key {key_id}\n"
    assert cli("key", "list", "shop") == ""


def test_a_server_key_belongs_to_one_registered_site(cli):
    assert "No site nobody is registered" in cli("key", "create", "nobody", "--server", exit_code=1)
    assert "A server key belongs to one site" in cli("key", "create", "--operator", "--server", exit_code=2)


def test_a_site_can_require_its_server_key_and_listing_says_so(cli, db):
    assert cli("site", "add", "shop", "--domain", "shop.test", "--require-server-key") == (
        "Registered site shop: domains shop.test; servers need a server key\n"
    )
    assert cli("site", "list") == "shop\tshop.test\tserver key required\n"
    cli("key", "create", "shop", "--server")
    cli("site", "add", "shop", "--domain", "shop.test")  # again without: no longer required
    assert cli("site", "list") == "shop\tshop.test\n"
    cli("site", "remove", "shop")
    assert list(db[sites.SERVER_KEYS].find()) == []


UMAMI_ID = "50429a93-8479-4073-be80-d5d29c09c2ec"


def test_a_site_is_registered_with_an_umami_website_id_and_found_by_it(cli, db):
    assert cli("site", "add", "shop", "--domain", "shop.test", "--umami-id", UMAMI_ID.upper()) == (
        f"Registered site shop: domains shop.test; Umami website id {UMAMI_ID}\n"
    )
    assert cli("site", "list") == f"shop\tshop.test\tumami {UMAMI_ID}\n"
    assert sites.registered_sites(db)["shop"].umami_id == UMAMI_ID
    # `site add` again without the option keeps the id; `site umami-id` changes or clears it.
    cli("site", "add", "shop", "--domain", "shop.test")
    assert sites.registered_sites(db)["shop"].umami_id == UMAMI_ID
    other = "0f6a6bb1-7d36-4c55-9a7e-d5c1f1a0e0b2"
    assert cli("site", "umami-id", "shop", other) == f"Site shop: Umami website id {other}\n"
    assert sites.registered_sites(db)["shop"].umami_id == other
    assert cli("site", "umami-id", "shop", "--clear") == "Site shop: no Umami website id\n"
    assert sites.registered_sites(db)["shop"].umami_id is None


def test_an_umami_website_id_is_a_uuid_of_one_site_only(cli):
    assert "not a UUID" in cli("site", "add", "shop", "--umami-id", "shop", exit_code=2)
    cli("site", "add", "shop", "--umami-id", UMAMI_ID)
    assert f"Umami website id {UMAMI_ID} is site shop's" in cli(
        "site", "add", "blog", "--umami-id", UMAMI_ID, exit_code=1
    )
    other = "0f6a6bb1-7d36-4c55-9a7e-d5c1f1a0e0b2"
    assert "No site nobody is registered" in cli("site", "umami-id", "nobody", other, exit_code=1)


def test_a_share_link_is_printed_once_and_only_its_hash_kept_with_the_site(cli, db):
    cli("site", "add", "shop/eu", "--domain", "shop.test")
    link = cli("site", "share", "shop/eu").splitlines()[-1]
    path, token = link.split("?share=")
    assert path == "/dashboard/shop/eu"
    assert token.startswith("sh_")
    assert sites.share_hash(db, "shop/eu") == hashlib.sha256(token.encode()).hexdigest()
    assert cli("site", "unshare", "shop/eu") == "Site shop/eu has no dashboard link now\n"
    assert sites.share_hash(db, "shop/eu") is None


def test_only_a_registered_site_is_shared(cli, db):
    assert "No site nobody is registered" in cli("site", "share", "nobody", exit_code=1)
    assert "No site nobody is registered" in cli("site", "unshare", "nobody", exit_code=1)
    assert sites.share_hash(db, "nobody") is None
