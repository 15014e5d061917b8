#!/usr/bin/env bash
# Installs the CustomAutograd package the way a user does and checks it works: packs the library into the
# local folder feed, creates a console project outside the repository that references the package and
# TorchSharp-cpu (no project reference to the repository), builds it and runs a custom function's forward
# and backward. On Debian 12 this also proves the package's buildTransitive libstdc++ step.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
feed="$root/artifacts/packages"
# A unique version per run, so a package cached by an earlier run is never used by mistake.
suffix="consumer.$(date +%s)"
base=$(sed -n 's:.*<VersionPrefix>\(.*\)</VersionPrefix>.*:\1:p' "$root/Directory.Build.props")
version="$base-$suffix"
dotnet pack "$root/src/CustomAutograd/CustomAutograd.csproj" -c Release -o "$feed" --version-suffix "$suffix" -v quiet -nologo

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
cat > NuGet.config <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="customautograd-local" value="$feed" />
  </packageSources>
</configuration>
XML
cat > Consumer.csproj <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <Nullable>enable</Nullable>
    <ImplicitUsings>enable</ImplicitUsings>
  </PropertyGroup>
  <ItemGroup>
    <PackageReference Include="CustomAutograd" Version="$version" />
    <PackageReference Include="TorchSharp-cpu" Version="0.107.0" />
  </ItemGroup>
</Project>
XML
cat > Program.cs <<'CS'
using CustomAutograd;
using TorchSharp;
using static TorchSharp.torch;

var square = AutogradFunction.Create(
    "Square",
    (ctx, x) => { ctx.SaveForBackward(x); return x * x; },
    (ctx, g) => g * 2 * ctx.SavedTensors[0]!);
var x = tensor(new[] { 1.0, -2.0, 3.0 }, requires_grad: true);
square.Apply(x).sum().backward();
var expected = tensor(new[] { 2.0, -4.0, 6.0 });
if (!x.grad!.allclose(expected))
    throw new Exception("wrong gradient: " + string.Join(", ", x.grad.data<double>().ToArray()));

var failing = AutogradFunction.Create("Failing", (ctx, t) => t * 1, (ctx, g) => throw new InvalidOperationException("from backward"));
try
{
    failing.Apply(x).sum().backward();
    throw new Exception("a failing backward did not raise");
}
catch (Exception e) when (e.Message.Contains("Failing") && e.Message.Contains("from backward"))
{
}
Console.WriteLine("consumer OK: gradient [2, -4, 6], backward failure surfaced as a .NET exception");
CS
dotnet build -c Release -v quiet -nologo
dotnet run -c Release --no-build
