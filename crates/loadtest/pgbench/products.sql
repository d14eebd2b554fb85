-- GET /api/v1/products?limit=20, as the service sent it before the load benchmark existed.
SELECT "products"."id", "products"."name", "products"."price", "products"."stock" FROM "products" WHERE ("products"."id" > 0) ORDER BY "products"."id" ASC LIMIT 21;
