-- Run by TestPsqlScript directly and through the tunnel; the outputs must match.
\pset null '<null>'
create table items (id int primary key, name text not null, price numeric(10,2), tags text[], meta jsonb, made timestamptz);
insert into items values
  (1, 'widget', 9.99, '{a,b}', '{"k": 1}', '2024-01-02 03:04:05+00'),
  (2, 'héllo wörld ✓', null, '{}', '{"nested": {"x": [1, 2, 3]}}', null),
  (3, E'line1\nline2', 0.01, null, 'null', '1999-12-31 23:59:59.999999+00');
select * from items order by id;
select count(*), sum(g)::bigint as total from generate_series(1, 100000) g;
select 'multi_first' as a \; select 'multi_second' as b \; select 3 as c;
do $$ begin raise notice 'hello from plpgsql %', 42; end $$;
begin;
update items set price = price * 2 where id = 1 returning id, price;
select 1 / 0;
select 'after error in transaction';
rollback;
select price from items where id = 1;
select * from no_such_table;
prepare p(int) as select name from items where id = $1;
execute p(2);
deallocate p;
create temp table t as select g as n, repeat('x', g % 50) as pad from generate_series(1, 3000) g;
select n % 10 as bucket, count(*), max(length(pad)) from t group by 1 order by 1;
\echo end of script
