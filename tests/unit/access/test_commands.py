"""`flask site ...` and `flask key ...`."""

from app.store import sites


def test_site_add_list_and_remove(cli, db):
    assert cli("site", "add", "shop", "--domain", "Shop.Test", "--domain", "www.shop.test") == (
        "Registered site shop: domains shop.test, www.shop.test\n"
    )
    assert cli("site", "add", "blog") == "Registered site blog: domains (none)\n"
    assert cli("site", "list") == "blog\t\nshop\tshop.test,www.shop.test\n"
    assert cli("site", "add", "shop", "--domain", "shop.test") == "Updated site shop: domains shop.test\n"
    cli("key", "create", "shop")
    assert cli("site", "remove", "shop") == "Removed site shop and its read keys\n"
    assert sites.read_keys(db, "shop") == []
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
